//! Camera controls from configuration: the names the config uses (exposure, gain,
//! white balance and their auto switches) mapped to V4L2 control ids, put in the
//! order the device needs them, and checked against the ranges the device reports.
//! Pure: no device needed.

use std::fmt;

/// V4L2 control ids (`linux/v4l2-controls.h`; stable kernel ABI).
pub mod cid {
    const USER_BASE: u32 = 0x0098_0900;
    const CAMERA_CLASS_BASE: u32 = 0x009a_0900;
    pub const AUTO_WHITE_BALANCE: u32 = USER_BASE + 12;
    pub const AUTOGAIN: u32 = USER_BASE + 18;
    pub const GAIN: u32 = USER_BASE + 19;
    pub const WHITE_BALANCE_TEMPERATURE: u32 = USER_BASE + 26;
    pub const EXPOSURE_AUTO: u32 = CAMERA_CLASS_BASE + 1;
    pub const EXPOSURE_ABSOLUTE: u32 = CAMERA_CLASS_BASE + 2;
}

/// `V4L2_CID_EXPOSURE_AUTO` menu entries.
const EXPOSURE_AUTO: i64 = 0;
const EXPOSURE_MANUAL: i64 = 1;
/// What most UVC cameras offer as "auto" (the plain AUTO entry is often missing).
const EXPOSURE_APERTURE_PRIORITY: i64 = 3;

/// A control the configuration can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlName {
    /// Exposure time in 100 µs units (`exposure`).
    Exposure,
    /// Automatic exposure on/off (`exposure_auto`).
    ExposureAuto,
    /// Analogue gain, device units (`gain`).
    Gain,
    /// Automatic gain on/off (`gain_auto`).
    GainAuto,
    /// White balance colour temperature in kelvin (`white_balance`).
    WhiteBalance,
    /// Automatic white balance on/off (`white_balance_auto`).
    WhiteBalanceAuto,
}

impl ControlName {
    pub const ALL: [Self; 6] = [
        Self::Exposure,
        Self::ExposureAuto,
        Self::Gain,
        Self::GainAuto,
        Self::WhiteBalance,
        Self::WhiteBalanceAuto,
    ];

    /// The config key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Exposure => "exposure",
            Self::ExposureAuto => "exposure_auto",
            Self::Gain => "gain",
            Self::GainAuto => "gain_auto",
            Self::WhiteBalance => "white_balance",
            Self::WhiteBalanceAuto => "white_balance_auto",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }

    /// The V4L2 control id.
    pub fn id(self) -> u32 {
        match self {
            Self::Exposure => cid::EXPOSURE_ABSOLUTE,
            Self::ExposureAuto => cid::EXPOSURE_AUTO,
            Self::Gain => cid::GAIN,
            Self::GainAuto => cid::AUTOGAIN,
            Self::WhiteBalance => cid::WHITE_BALANCE_TEMPERATURE,
            Self::WhiteBalanceAuto => cid::AUTO_WHITE_BALANCE,
        }
    }

    fn is_switch(self) -> bool {
        matches!(
            self,
            Self::ExposureAuto | Self::GainAuto | Self::WhiteBalanceAuto
        )
    }

    /// The auto switch that must be off for this manual value to take effect.
    fn switch(self) -> Option<Self> {
        match self {
            Self::Exposure => Some(Self::ExposureAuto),
            Self::Gain => Some(Self::GainAuto),
            Self::WhiteBalance => Some(Self::WhiteBalanceAuto),
            _ => None,
        }
    }
}

impl fmt::Display for ControlName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A value from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlValue {
    Int(i64),
    Bool(bool),
}

/// One control to write, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlSetting {
    pub name: ControlName,
    pub value: ControlValue,
}

/// The range a device reports for a control (`VIDIOC_QUERYCTRL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRange {
    pub minimum: i64,
    pub maximum: i64,
    pub step: u64,
    pub default: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error(
        "unknown camera control {0:?}; known: exposure, exposure_auto, gain, gain_auto, white_balance, white_balance_auto"
    )]
    Unknown(String),
    #[error("control {name} is set twice")]
    Duplicate { name: ControlName },
    #[error("control {name} takes {expected}")]
    WrongType {
        name: ControlName,
        expected: &'static str,
    },
    #[error(
        "control {name} = {value} conflicts with {switch} = true (turn the automatic mode off)"
    )]
    Conflict {
        name: ControlName,
        value: i64,
        switch: ControlName,
    },
    #[error("the camera has no {name} control")]
    Missing { name: ControlName },
    #[error("control {name} = {value} is outside the camera's range {minimum}..={maximum}")]
    OutOfRange {
        name: ControlName,
        value: i64,
        minimum: i64,
        maximum: i64,
    },
    #[error("control {name} = {value} is not a multiple of the step {step} from {minimum}")]
    OffStep {
        name: ControlName,
        value: i64,
        step: u64,
        minimum: i64,
    },
}

/// Parses configured controls into the writes to make, in the order that works on
/// real devices: automatic switches first (a manual exposure is ignored, or
/// refused with EBUSY, while auto exposure is on), then the values. A manual value
/// without its switch configured turns the switch off; a manual value with its
/// switch set to `true` is a contradiction and an error.
pub fn parse_controls(
    entries: &[(String, ControlValue)],
) -> Result<Vec<ControlSetting>, ControlError> {
    let mut seen: Vec<ControlSetting> = Vec::new();
    for (key, value) in entries {
        let name = ControlName::from_key(key).ok_or_else(|| ControlError::Unknown(key.clone()))?;
        if seen.iter().any(|s| s.name == name) {
            return Err(ControlError::Duplicate { name });
        }
        match (name.is_switch(), value) {
            (true, ControlValue::Bool(_)) | (false, ControlValue::Int(_)) => {}
            (true, _) => {
                return Err(ControlError::WrongType {
                    name,
                    expected: "true or false",
                });
            }
            (false, _) => {
                return Err(ControlError::WrongType {
                    name,
                    expected: "a whole number",
                });
            }
        }
        seen.push(ControlSetting {
            name,
            value: *value,
        });
    }

    let mut switches: Vec<ControlSetting> = seen
        .iter()
        .copied()
        .filter(|s| s.name.is_switch())
        .collect();
    let values: Vec<ControlSetting> = seen
        .iter()
        .copied()
        .filter(|s| !s.name.is_switch())
        .collect();
    for v in &values {
        let (Some(switch), ControlValue::Int(value)) = (v.name.switch(), v.value) else {
            continue;
        };
        match switches.iter().find(|s| s.name == switch) {
            Some(ControlSetting {
                value: ControlValue::Bool(true),
                ..
            }) => {
                return Err(ControlError::Conflict {
                    name: v.name,
                    value,
                    switch,
                });
            }
            Some(_) => {}
            None => switches.push(ControlSetting {
                name: switch,
                value: ControlValue::Bool(false),
            }),
        }
    }
    switches.extend(values);
    Ok(switches)
}

/// The raw value to write for a setting, checked against the device's range.
/// `range` is `None` when the device has no such control.
pub fn device_value(
    setting: ControlSetting,
    range: Option<ControlRange>,
) -> Result<i64, ControlError> {
    let name = setting.name;
    let range = range.ok_or(ControlError::Missing { name })?;
    let value = match (name, setting.value) {
        // Exposure's switch is a menu, not a boolean.
        (ControlName::ExposureAuto, ControlValue::Bool(false)) => EXPOSURE_MANUAL,
        (ControlName::ExposureAuto, ControlValue::Bool(true)) => {
            if range.maximum >= EXPOSURE_APERTURE_PRIORITY {
                EXPOSURE_APERTURE_PRIORITY
            } else {
                EXPOSURE_AUTO
            }
        }
        (_, ControlValue::Bool(b)) => i64::from(b),
        (_, ControlValue::Int(v)) => v,
    };
    if value < range.minimum || value > range.maximum {
        return Err(ControlError::OutOfRange {
            name,
            value,
            minimum: range.minimum,
            maximum: range.maximum,
        });
    }
    let step = range.step.max(1);
    if value.abs_diff(range.minimum) % step != 0 {
        return Err(ControlError::OffStep {
            name,
            value,
            step,
            minimum: range.minimum,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: ControlValue) -> (String, ControlValue) {
        (key.to_string(), value)
    }

    fn range(minimum: i64, maximum: i64, step: u64) -> Option<ControlRange> {
        Some(ControlRange {
            minimum,
            maximum,
            step,
            default: minimum,
        })
    }

    #[test]
    fn ids_match_the_kernel_header() {
        assert_eq!(ControlName::Exposure.id(), 0x009a_0902);
        assert_eq!(ControlName::ExposureAuto.id(), 0x009a_0901);
        assert_eq!(ControlName::Gain.id(), 0x0098_0913);
        assert_eq!(ControlName::GainAuto.id(), 0x0098_0912);
        assert_eq!(ControlName::WhiteBalance.id(), 0x0098_091a);
        assert_eq!(ControlName::WhiteBalanceAuto.id(), 0x0098_090c);
    }

    #[test]
    fn manual_values_turn_their_switch_off_first() {
        let got = parse_controls(&[
            entry("exposure", ControlValue::Int(250)),
            entry("white_balance_auto", ControlValue::Bool(true)),
            entry("gain", ControlValue::Int(4)),
        ])
        .unwrap();
        let order: Vec<_> = got.iter().map(|s| (s.name.key(), s.value)).collect();
        assert_eq!(
            order,
            [
                ("white_balance_auto", ControlValue::Bool(true)),
                ("exposure_auto", ControlValue::Bool(false)),
                ("gain_auto", ControlValue::Bool(false)),
                ("exposure", ControlValue::Int(250)),
                ("gain", ControlValue::Int(4)),
            ]
        );
    }

    #[test]
    fn bad_entries_are_explained() {
        let err = parse_controls(&[entry("focus", ControlValue::Int(1))]).unwrap_err();
        assert!(
            err.to_string().contains("unknown camera control \"focus\""),
            "{err}"
        );
        assert_eq!(
            parse_controls(&[entry("gain", ControlValue::Bool(true))]),
            Err(ControlError::WrongType {
                name: ControlName::Gain,
                expected: "a whole number"
            })
        );
        assert!(matches!(
            parse_controls(&[entry("gain_auto", ControlValue::Int(1))]),
            Err(ControlError::WrongType { .. })
        ));
        assert!(matches!(
            parse_controls(&[
                entry("gain", ControlValue::Int(1)),
                entry("gain", ControlValue::Int(2))
            ]),
            Err(ControlError::Duplicate { .. })
        ));
        let err = parse_controls(&[
            entry("exposure_auto", ControlValue::Bool(true)),
            entry("exposure", ControlValue::Int(100)),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "control exposure = 100 conflicts with exposure_auto = true (turn the automatic mode off)"
        );
    }

    #[test]
    fn values_are_checked_against_the_device_range() {
        let gain = |v| ControlSetting {
            name: ControlName::Gain,
            value: ControlValue::Int(v),
        };
        assert_eq!(device_value(gain(16), range(0, 255, 1)), Ok(16));
        let err = device_value(gain(300), range(0, 255, 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "control gain = 300 is outside the camera's range 0..=255"
        );
        assert!(matches!(
            device_value(gain(15), range(10, 100, 10)),
            Err(ControlError::OffStep { .. })
        ));
        assert_eq!(device_value(gain(-20), range(-30, 30, 10)), Ok(-20));
        assert_eq!(
            device_value(gain(1), None),
            Err(ControlError::Missing {
                name: ControlName::Gain
            })
        );
    }

    #[test]
    fn exposure_switch_is_a_menu() {
        let auto = |b| ControlSetting {
            name: ControlName::ExposureAuto,
            value: ControlValue::Bool(b),
        };
        assert_eq!(device_value(auto(false), range(0, 3, 1)), Ok(1));
        assert_eq!(device_value(auto(true), range(0, 3, 1)), Ok(3));
        assert_eq!(device_value(auto(true), range(0, 1, 1)), Ok(0));
        let awb = ControlSetting {
            name: ControlName::WhiteBalanceAuto,
            value: ControlValue::Bool(true),
        };
        assert_eq!(device_value(awb, range(0, 1, 1)), Ok(1));
    }
}
