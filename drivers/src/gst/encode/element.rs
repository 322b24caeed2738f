//! Finding the encoder element (`auto` probes the registry in preference order) and
//! setting its properties with errors instead of GLib's warnings or panics.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

use super::{ELEMENTS, EncodeError, EncoderChoice, EncoderElement};
use crate::frame::PixelFormat;

/// The encoder elements installed on this machine, in `auto` preference order.
pub fn probe() -> Vec<&'static EncoderElement> {
    if gst::init().is_err() {
        return Vec::new();
    }
    ELEMENTS
        .iter()
        .filter(|e| gst::ElementFactory::find(e.factory).is_some())
        .collect()
}

/// The element `choice` means on this machine, or what to install.
pub fn resolve(choice: EncoderChoice) -> Result<&'static EncoderElement, EncodeError> {
    gst::init().map_err(|e| EncodeError::Pipeline(format!("GStreamer: {e}")))?;
    match choice {
        EncoderChoice::Named(e) => match gst::ElementFactory::find(e.factory) {
            Some(_) => Ok(e),
            None => Err(EncodeError::Missing {
                element: e.factory,
                install: e.install,
            }),
        },
        EncoderChoice::Auto => {
            let h264 = ELEMENTS.iter().filter(|e| e.codec == PixelFormat::H264);
            let mut tried = Vec::new();
            for e in h264 {
                if gst::ElementFactory::find(e.factory).is_some() {
                    return Ok(e);
                }
                tried.push(e.factory);
            }
            Err(EncodeError::NoEncoder {
                tried: tried.join(", "),
            })
        }
    }
}

/// Makes a helper element the pipeline needs, naming the package when it is missing.
pub(super) fn make(
    factory: &'static str,
    install: &'static str,
) -> Result<gst::Element, EncodeError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| EncodeError::MissingElement {
            element: factory,
            install,
        })
}

/// Sets `name` from its string form (as in `gst-launch-1.0`), checking that the
/// property exists, is writable and holds the value: GLib would only warn (or
/// gstreamer-rs panic) otherwise.
pub(super) fn set(
    el: &gst::Element,
    factory: &'static str,
    name: &str,
    value: &str,
) -> Result<(), EncodeError> {
    let bad = |message: String| EncodeError::Misconfigured {
        element: factory,
        message,
    };
    let pspec = el
        .find_property(name)
        .ok_or_else(|| bad(format!("has no property \"{name}\"")))?;
    if !pspec.flags().contains(glib::ParamFlags::WRITABLE) {
        return Err(bad(format!("property \"{name}\" is read-only")));
    }
    let v = glib::Value::deserialize_with_pspec(value, &pspec)
        .map_err(|_| bad(format!("\"{value}\" is not a valid value for \"{name}\"")))?;
    let range = |min: String, max: String| {
        bad(format!(
            "{name} = {value} is out of range; this encoder accepts {min}..={max}"
        ))
    };
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        let x = v.get::<u32>().unwrap_or(0);
        if x < p.minimum() || x > p.maximum() {
            return Err(range(p.minimum().to_string(), p.maximum().to_string()));
        }
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt>() {
        let x = v.get::<i32>().unwrap_or(0);
        if x < p.minimum() || x > p.maximum() {
            return Err(range(p.minimum().to_string(), p.maximum().to_string()));
        }
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
        let x = v.get::<u64>().unwrap_or(0);
        if x < p.minimum() || x > p.maximum() {
            return Err(range(p.minimum().to_string(), p.maximum().to_string()));
        }
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt64>() {
        let x = v.get::<i64>().unwrap_or(0);
        if x < p.minimum() || x > p.maximum() {
            return Err(range(p.minimum().to_string(), p.maximum().to_string()));
        }
    }
    el.set_property_from_value(name, &v);
    Ok(())
}
