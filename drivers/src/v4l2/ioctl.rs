//! The few V4L2 ioctls made directly rather than through `v4l`: the crate's own
//! versions unwrap on driver-supplied strings, control types and colorimetry
//! values, and a device's answer must never panic the daemon.
#![allow(unsafe_code)]

use std::io;
use std::mem;

use v4l::device::Device;
use v4l::v4l_sys::{v4l2_capability, v4l2_format, v4l2_queryctrl};
use v4l::v4l2;

use super::controls::ControlRange;

/// `V4L2_CAP_VIDEO_CAPTURE` (single-planar capture).
pub(super) const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
/// `V4L2_CAP_STREAMING` (mmap/userptr streaming I/O).
pub(super) const CAP_STREAMING: u32 = 0x0400_0000;
/// `V4L2_CAP_DEVICE_CAPS`: `device_caps` is valid.
const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
/// `V4L2_CTRL_FLAG_DISABLED`.
const CTRL_FLAG_DISABLED: u32 = 0x0001;

/// `VIDIOC_QUERYCAP`, strings decoded leniently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// Capabilities of this node (not of the whole physical device: a UVC camera's
    /// metadata node has no `VIDEO_CAPTURE` here).
    pub caps: u32,
}

pub(super) fn query_identity(dev: &Device) -> io::Result<Identity> {
    // SAFETY: v4l2_capability is a plain C struct for which all-zero bytes are a
    // valid value.
    let mut cap: v4l2_capability = unsafe { mem::zeroed() };
    // SAFETY: the fd is open for the lifetime of `dev`; VIDIOC_QUERYCAP writes at
    // most size_of::<v4l2_capability>() bytes into `cap`, which outlives the call.
    unsafe {
        v4l2::ioctl(
            dev.handle().fd(),
            v4l2::vidioc::VIDIOC_QUERYCAP,
            (&raw mut cap).cast(),
        )?;
    }
    let caps = if cap.capabilities & CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    };
    Ok(Identity {
        driver: c_string(&cap.driver),
        card: c_string(&cap.card),
        bus: c_string(&cap.bus_info),
        caps,
    })
}

/// The range of control `id` (`VIDIOC_QUERYCTRL`), or `None` when the device has no
/// such control or has it disabled.
pub(super) fn query_range(dev: &Device, id: u32) -> io::Result<Option<ControlRange>> {
    // SAFETY: plain C struct; all-zero is valid.
    let mut q: v4l2_queryctrl = unsafe { mem::zeroed() };
    q.id = id;
    // SAFETY: the fd is open for the lifetime of `dev`; the kernel reads `id` and
    // writes at most size_of::<v4l2_queryctrl>() bytes into `q`.
    let res = unsafe {
        v4l2::ioctl(
            dev.handle().fd(),
            v4l2::vidioc::VIDIOC_QUERYCTRL,
            (&raw mut q).cast(),
        )
    };
    match res {
        Ok(()) if q.flags & CTRL_FLAG_DISABLED != 0 => Ok(None),
        Ok(()) => Ok(Some(ControlRange {
            minimum: i64::from(q.minimum),
            maximum: i64::from(q.maximum),
            step: u64::try_from(q.step).unwrap_or(1),
            default: i64::from(q.default_value),
        })),
        // EINVAL: no such control.
        Err(e) if e.raw_os_error() == Some(22) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`.
const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
/// `V4L2_FIELD_ANY`: the driver picks (progressive for cameras).
const FIELD_ANY: u32 = 0;

/// The format a driver settled on after `VIDIOC_S_FMT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SetFormat {
    pub width: u32,
    pub height: u32,
    pub fourcc: [u8; 4],
    /// Bytes per line of the first plane (0: packed, or compressed).
    pub stride: u32,
}

/// Asks for a single-planar capture format; the driver may adjust it, so the
/// caller compares what comes back.
pub(super) fn set_format(
    dev: &Device,
    width: u32,
    height: u32,
    fourcc: [u8; 4],
) -> io::Result<SetFormat> {
    // SAFETY: v4l2_format is a plain C struct (with a union of plain C structs);
    // all-zero is valid.
    let mut f: v4l2_format = unsafe { mem::zeroed() };
    f.type_ = BUF_TYPE_VIDEO_CAPTURE;
    // For VIDEO_CAPTURE the kernel reads and writes the `pix` member of the union
    // (writing a plain field of a union is safe; reading it back is not).
    f.fmt.pix.width = width;
    f.fmt.pix.height = height;
    f.fmt.pix.pixelformat = u32::from_le_bytes(fourcc);
    f.fmt.pix.field = FIELD_ANY;
    // SAFETY: the fd is open for the lifetime of `dev`; VIDIOC_S_FMT reads and writes
    // at most size_of::<v4l2_format>() bytes of `f`, which outlives the call.
    unsafe {
        v4l2::ioctl(
            dev.handle().fd(),
            v4l2::vidioc::VIDIOC_S_FMT,
            (&raw mut f).cast(),
        )?;
    }
    // SAFETY: the kernel filled `pix` for a VIDEO_CAPTURE format; every bit pattern
    // is a valid u32.
    let pix = unsafe { f.fmt.pix };
    Ok(SetFormat {
        width: pix.width,
        height: pix.height,
        fourcc: pix.pixelformat.to_le_bytes(),
        stride: pix.bytesperline,
    })
}

/// A fixed-size, NUL-padded C string from a driver, decoded without trusting it.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_strings_are_decoded_leniently() {
        assert_eq!(c_string(b"uvcvideo\0\0\0\0"), "uvcvideo");
        assert_eq!(c_string(b"Cam \xff\0garbage"), "Cam \u{fffd}");
        assert_eq!(c_string(b"no terminator"), "no terminator");
    }

    #[test]
    fn control_ids_match_the_bindings() {
        use super::super::controls::cid;
        use v4l::v4l_sys as sys;
        assert_eq!(cid::EXPOSURE_ABSOLUTE, sys::V4L2_CID_EXPOSURE_ABSOLUTE);
        assert_eq!(cid::EXPOSURE_AUTO, sys::V4L2_CID_EXPOSURE_AUTO);
        assert_eq!(cid::GAIN, sys::V4L2_CID_GAIN);
        assert_eq!(cid::AUTOGAIN, sys::V4L2_CID_AUTOGAIN);
        assert_eq!(
            cid::WHITE_BALANCE_TEMPERATURE,
            sys::V4L2_CID_WHITE_BALANCE_TEMPERATURE
        );
        assert_eq!(cid::AUTO_WHITE_BALANCE, sys::V4L2_CID_AUTO_WHITE_BALANCE);
        assert_eq!(CAP_VIDEO_CAPTURE, sys::V4L2_CAP_VIDEO_CAPTURE);
        assert_eq!(CAP_STREAMING, sys::V4L2_CAP_STREAMING);
        assert_eq!(CTRL_FLAG_DISABLED, sys::V4L2_CTRL_FLAG_DISABLED);
        assert_eq!(
            BUF_TYPE_VIDEO_CAPTURE,
            sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE
        );
        assert_eq!(FIELD_ANY, sys::v4l2_field_V4L2_FIELD_ANY);
    }
}
