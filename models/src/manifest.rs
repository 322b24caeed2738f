//! `manifest.toml`: what a model expects and produces. A model directory holds
//! `model.onnx`, `manifest.toml` and `MODEL_CARD.md`; the manifest is how any ONNX
//! segmentation model a venue brings drops in without code changes.
//!
//! ```toml
//! [model]
//! name = "venue-reference-seg"
//! version = "1"
//! [input]
//! width = 256
//! height = 144
//! layout = "NCHW"
//! color = "RGB"          # or "BGR"
//! mean = [0.5, 0.5, 0.5] # on pixels scaled to 0..1
//! std = [0.25, 0.25, 0.25]
//! [output]
//! kind = "logits"        # or "probabilities"
//! classes = ["athlete"]
//! threshold = 0.5        # on the probability
//! [provenance]           # optional, free text
//! trained_by = "models/train/train.sh"
//! ```

use std::fmt;

use toml_span::Span;
use toml_span::value::{Table, Value, ValueInner};

/// Tensor layout of the model input. Only NCHW today; the type says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Nchw,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

/// What the single output channel holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Logits,
    Probabilities,
}

/// The model input: `1 × 3 × height × width` float32.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub color: ColorOrder,
    /// Per channel, in the model's channel order, on pixels scaled to 0..1.
    pub mean: [f32; 3],
    /// Per channel, in the model's channel order; every value > 0.
    pub std: [f32; 3],
}

/// The model output: `1 × 1 × height × width`, foreground where above `threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    pub kind: OutputKind,
    /// The foreground class names; one entry (single-channel output) today.
    pub classes: Vec<String>,
    /// Probability threshold in (0, 1); for logits compared as `logit > ln(t/(1-t))`.
    pub threshold: f32,
}

/// Where the model came from (free text, for people).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    pub trained_by: Option<String>,
    pub data: Option<String>,
    pub license: Option<String>,
}

/// A validated manifest: every field present and in range.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub provenance: Provenance,
}

/// One problem in a manifest, with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found in a manifest, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: {}", e.line, e.column, e.message)?;
        }
        Ok(())
    }
}

/// Largest model input side accepted (pixels).
pub const MAX_SIDE: u32 = 4096;

impl Manifest {
    /// Parses and validates a manifest, reporting every error at once.
    pub fn parse(text: &str) -> Result<Manifest, ManifestErrors> {
        let mut ctx = Ctx {
            text,
            errors: Vec::new(),
        };
        let mut root = match toml_span::parse(text) {
            Ok(v) => v,
            Err(e) => {
                ctx.error(e.span, format!("invalid TOML: {e}"));
                return Err(ctx.finish());
            }
        };
        let manifest = parse_root(&mut ctx, &mut root);
        match manifest {
            Some(m) if ctx.errors.is_empty() => Ok(m),
            _ => Err(ctx.finish()),
        }
    }

    /// The output threshold in the output's own units (logit or probability).
    pub fn raw_threshold(&self) -> f32 {
        let t = self.output.threshold;
        match self.output.kind {
            OutputKind::Probabilities => t,
            OutputKind::Logits => (t / (1.0 - t)).ln(),
        }
    }
}

struct Ctx<'t> {
    text: &'t str,
    errors: Vec<(usize, ManifestError)>,
}

impl Ctx<'_> {
    fn error(&mut self, span: Span, message: String) {
        let pos = span.start.min(self.text.len());
        let before = self.text.get(..pos).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push((
            span.start,
            ManifestError {
                line,
                column,
                message,
            },
        ));
    }

    fn finish(mut self) -> ManifestErrors {
        self.errors.sort_by_key(|(pos, _)| *pos);
        ManifestErrors(self.errors.into_iter().map(|(_, e)| e).collect())
    }
}

fn type_name(v: &ValueInner<'_>) -> &'static str {
    match v {
        ValueInner::String(_) => "a string",
        ValueInner::Integer(_) => "an integer",
        ValueInner::Float(_) => "a float",
        ValueInner::Boolean(_) => "a boolean",
        ValueInner::Array(_) => "an array",
        ValueInner::Table(_) => "a table",
    }
}

/// A table consumed key by key; keys left over are reported as unknown.
struct Walk<'de> {
    path: &'static str,
    span: Span,
    map: Table<'de>,
}

impl<'de> Walk<'de> {
    fn new(ctx: &mut Ctx<'_>, path: &'static str, value: &mut Value<'de>) -> Option<Self> {
        let span = value.span;
        match value.take() {
            ValueInner::Table(map) => Some(Self { path, span, map }),
            other => {
                ctx.error(
                    span,
                    format!("{path}: expected a table, found {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// A required key: reported missing (at the table) when absent.
    fn required(&mut self, ctx: &mut Ctx<'_>, key: &str) -> Option<Value<'de>> {
        let v = self.map.remove(key);
        if v.is_none() {
            let where_ = if self.path.is_empty() {
                "the top level".to_string()
            } else {
                format!("[{}]", self.path)
            };
            ctx.error(
                self.span,
                format!("missing required key \"{key}\" in {where_}"),
            );
        }
        v
    }

    fn optional(&mut self, key: &str) -> Option<Value<'de>> {
        self.map.remove(key)
    }

    fn finish(self, ctx: &mut Ctx<'_>) {
        for key in self.map.keys() {
            ctx.error(
                key.span,
                format!("unknown key \"{}\"", self.name(&key.name)),
            );
        }
    }
}

fn string(ctx: &mut Ctx<'_>, name: &str, mut v: Value<'_>) -> Option<String> {
    let span = v.span;
    match v.take() {
        ValueInner::String(s) => Some(s.into_owned()),
        other => {
            ctx.error(
                span,
                format!("{name}: expected a string, found {}", type_name(&other)),
            );
            None
        }
    }
}

fn number(ctx: &mut Ctx<'_>, name: &str, v: &mut Value<'_>) -> Option<f64> {
    let span = v.span;
    match v.take() {
        ValueInner::Float(f) => Some(f),
        ValueInner::Integer(i) => Some(i as f64),
        other => {
            ctx.error(
                span,
                format!("{name}: expected a number, found {}", type_name(&other)),
            );
            None
        }
    }
}

fn side(ctx: &mut Ctx<'_>, name: &str, mut v: Value<'_>) -> Option<u32> {
    let span = v.span;
    match v.take() {
        ValueInner::Integer(i) if (1..=i64::from(MAX_SIDE)).contains(&i) => u32::try_from(i).ok(),
        ValueInner::Integer(i) => {
            ctx.error(
                span,
                format!("{name}: {i} is out of range (1 to {MAX_SIDE} pixels)"),
            );
            None
        }
        other => {
            ctx.error(
                span,
                format!("{name}: expected an integer, found {}", type_name(&other)),
            );
            None
        }
    }
}

fn choice<T: Copy>(
    ctx: &mut Ctx<'_>,
    name: &str,
    v: Value<'_>,
    options: &[(&str, T)],
) -> Option<T> {
    let span = v.span;
    let s = string(ctx, name, v)?;
    if let Some((_, t)) = options.iter().find(|(o, _)| o.eq_ignore_ascii_case(&s)) {
        return Some(*t);
    }
    let names: Vec<String> = options.iter().map(|(o, _)| format!("\"{o}\"")).collect();
    ctx.error(
        span,
        format!("{name}: \"{s}\" is not one of {}", names.join(", ")),
    );
    None
}

fn triple(ctx: &mut Ctx<'_>, name: &str, mut v: Value<'_>, positive: bool) -> Option<[f32; 3]> {
    let span = v.span;
    let items = match v.take() {
        ValueInner::Array(items) => items,
        other => {
            ctx.error(
                span,
                format!(
                    "{name}: expected an array of 3 numbers, found {}",
                    type_name(&other)
                ),
            );
            return None;
        }
    };
    if items.len() != 3 {
        ctx.error(
            span,
            format!(
                "{name}: expected 3 numbers (one per channel), found {}",
                items.len()
            ),
        );
        return None;
    }
    let mut out = [0f32; 3];
    let mut ok = true;
    for (slot, mut item) in out.iter_mut().zip(items) {
        let item_span = item.span;
        match number(ctx, name, &mut item) {
            Some(x) if x.is_finite() && (!positive || x > 0.0) => *slot = x as f32,
            Some(x) => {
                ctx.error(
                    item_span,
                    format!("{name}: {x} must be a finite number greater than 0"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn parse_root(ctx: &mut Ctx<'_>, root: &mut Value<'_>) -> Option<Manifest> {
    let mut top = Walk::new(ctx, "", root)?;
    let model = top.required(ctx, "model");
    let input = top.required(ctx, "input");
    let output = top.required(ctx, "output");
    let provenance = top.optional("provenance");
    top.finish(ctx);

    let (name, version) = model.and_then(|mut v| parse_model(ctx, &mut v)).unzip();
    let input = input.and_then(|mut v| parse_input(ctx, &mut v));
    let output = output.and_then(|mut v| parse_output(ctx, &mut v));
    let provenance = match provenance {
        Some(mut v) => parse_provenance(ctx, &mut v),
        None => Some(Provenance::default()),
    };
    Some(Manifest {
        name: name?,
        version: version?,
        input: input?,
        output: output?,
        provenance: provenance?,
    })
}

fn parse_model(ctx: &mut Ctx<'_>, v: &mut Value<'_>) -> Option<(String, String)> {
    let mut t = Walk::new(ctx, "model", v)?;
    let name = t
        .required(ctx, "name")
        .and_then(|v| string(ctx, "model.name", v));
    let version = t
        .required(ctx, "version")
        .and_then(|v| string(ctx, "model.version", v));
    t.finish(ctx);
    Some((name?, version?))
}

fn parse_input(ctx: &mut Ctx<'_>, v: &mut Value<'_>) -> Option<InputSpec> {
    let mut t = Walk::new(ctx, "input", v)?;
    let width = t
        .required(ctx, "width")
        .and_then(|v| side(ctx, "input.width", v));
    let height = t
        .required(ctx, "height")
        .and_then(|v| side(ctx, "input.height", v));
    let layout = t
        .required(ctx, "layout")
        .and_then(|v| choice(ctx, "input.layout", v, &[("NCHW", Layout::Nchw)]));
    let color = t.required(ctx, "color").and_then(|v| {
        choice(
            ctx,
            "input.color",
            v,
            &[("RGB", ColorOrder::Rgb), ("BGR", ColorOrder::Bgr)],
        )
    });
    let mean = t
        .required(ctx, "mean")
        .and_then(|v| triple(ctx, "input.mean", v, false));
    let std = t
        .required(ctx, "std")
        .and_then(|v| triple(ctx, "input.std", v, true));
    t.finish(ctx);
    Some(InputSpec {
        width: width?,
        height: height?,
        layout: layout?,
        color: color?,
        mean: mean?,
        std: std?,
    })
}

fn parse_output(ctx: &mut Ctx<'_>, v: &mut Value<'_>) -> Option<OutputSpec> {
    let mut t = Walk::new(ctx, "output", v)?;
    let kind = t.required(ctx, "kind").and_then(|v| {
        choice(
            ctx,
            "output.kind",
            v,
            &[
                ("logits", OutputKind::Logits),
                ("probabilities", OutputKind::Probabilities),
            ],
        )
    });
    let classes = t.required(ctx, "classes").and_then(|mut v| {
        let span = v.span;
        match v.take() {
            ValueInner::Array(items) if items.len() == 1 => {
                let names: Option<Vec<String>> = items
                    .into_iter()
                    .map(|i| string(ctx, "output.classes", i))
                    .collect();
                names
            }
            ValueInner::Array(items) => {
                ctx.error(
                    span,
                    format!(
                        "output.classes: expected exactly 1 class (single-channel output), found {}",
                        items.len()
                    ),
                );
                None
            }
            other => {
                ctx.error(
                    span,
                    format!(
                        "output.classes: expected an array of strings, found {}",
                        type_name(&other)
                    ),
                );
                None
            }
        }
    });
    let threshold = t.required(ctx, "threshold").and_then(|mut v| {
        let span = v.span;
        match number(ctx, "output.threshold", &mut v) {
            Some(x) if x > 0.0 && x < 1.0 => Some(x as f32),
            Some(x) => {
                ctx.error(
                    span,
                    format!(
                        "output.threshold: {x} must be a probability between 0 and 1 (exclusive)"
                    ),
                );
                None
            }
            None => None,
        }
    });
    t.finish(ctx);
    Some(OutputSpec {
        kind: kind?,
        classes: classes?,
        threshold: threshold?,
    })
}

fn parse_provenance(ctx: &mut Ctx<'_>, v: &mut Value<'_>) -> Option<Provenance> {
    let mut t = Walk::new(ctx, "provenance", v)?;
    let mut p = Provenance::default();
    let mut ok = true;
    for (key, slot) in [
        ("trained_by", &mut p.trained_by),
        ("data", &mut p.data),
        ("license", &mut p.license),
    ] {
        if let Some(v) = t.optional(key) {
            *slot = string(ctx, &format!("provenance.{key}"), v);
            ok &= slot.is_some();
        }
    }
    t.finish(ctx);
    ok.then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"[model]
name = "m"
version = "1"

[input]
width = 256
height = 144
layout = "NCHW"
color = "RGB"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]

[output]
kind = "logits"
classes = ["athlete"]
threshold = 0.5
"#;

    #[test]
    fn good_manifest_parses() -> Result<(), ManifestErrors> {
        let m = Manifest::parse(GOOD)?;
        assert_eq!(m.input.width, 256);
        assert_eq!(m.input.height, 144);
        assert_eq!(m.input.color, ColorOrder::Rgb);
        assert_eq!(m.output.kind, OutputKind::Logits);
        assert_eq!(m.output.classes, vec!["athlete".to_string()]);
        assert_eq!(m.raw_threshold(), 0.0);
        assert_eq!(m.provenance, Provenance::default());
        Ok(())
    }

    #[test]
    fn reference_manifest_parses() -> Result<(), ManifestErrors> {
        let m = Manifest::parse(include_str!("../reference/manifest.toml"))?;
        assert_eq!(m.input.layout, Layout::Nchw);
        assert!(m.provenance.trained_by.is_some());
        Ok(())
    }

    /// Each bad manifest (a replacement in GOOD, or a whole text) and its exact errors.
    #[test]
    fn bad_manifests_and_their_messages() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "width = 256",
                "width = 0",
                &["6:9: input.width: 0 is out of range (1 to 4096 pixels)"],
            ),
            (
                "width = 256",
                "width = \"256\"",
                &["6:10: input.width: expected an integer, found a string"],
            ),
            (
                "height = 144\n",
                "",
                &["5:1: missing required key \"height\" in [input]"],
            ),
            (
                "\"NCHW\"",
                "\"NHWC\"",
                &["8:11: input.layout: \"NHWC\" is not one of \"NCHW\""],
            ),
            (
                "\"RGB\"",
                "\"YUV\"",
                &["9:10: input.color: \"YUV\" is not one of \"RGB\", \"BGR\""],
            ),
            (
                "mean = [0.5, 0.5, 0.5]",
                "mean = [0.5, 0.5]",
                &["10:8: input.mean: expected 3 numbers (one per channel), found 2"],
            ),
            (
                "std = [0.25, 0.25, 0.25]",
                "std = [0.25, 0, 0.25]",
                &["11:14: input.std: 0 must be a finite number greater than 0"],
            ),
            (
                "\"logits\"",
                "\"softmax\"",
                &["14:9: output.kind: \"softmax\" is not one of \"logits\", \"probabilities\""],
            ),
            (
                "[\"athlete\"]",
                "[\"athlete\", \"snow\"]",
                &[
                    "15:11: output.classes: expected exactly 1 class (single-channel output), found 2",
                ],
            ),
            (
                "threshold = 0.5",
                "threshold = 1.5",
                &["16:13: output.threshold: 1.5 must be a probability between 0 and 1 (exclusive)"],
            ),
            (
                "version = \"1\"",
                "version = \"1\"\nfile = \"x.onnx\"",
                &["4:1: unknown key \"model.file\""],
            ),
            (
                "width = 256",
                "width = -1",
                &["6:9: input.width: -1 is out of range (1 to 4096 pixels)"],
            ),
            (
                "threshold = 0.5",
                "threshold = \"high\"",
                &["16:14: output.threshold: expected a number, found a string"],
            ),
        ];
        for (from, to, expected) in cases {
            assert!(GOOD.contains(from), "{from:?} not in the good manifest");
            let text = GOOD.replacen(from, to, 1);
            let errors = match Manifest::parse(&text) {
                Ok(_) => panic!("{to:?} was accepted"),
                Err(e) => e,
            };
            let got: Vec<String> = errors
                .0
                .iter()
                .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
                .collect();
            assert_eq!(&got, expected, "replacing {from:?} with {to:?}");
        }
    }

    #[test]
    fn whole_bad_texts() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[model\n",
                &["1:7: invalid TOML: expected a right bracket, found a newline"],
            ),
            (
                "",
                &[
                    "1:1: missing required key \"model\" in the top level",
                    "1:1: missing required key \"input\" in the top level",
                    "1:1: missing required key \"output\" in the top level",
                ],
            ),
        ];
        for (text, expected) in cases {
            let errors = match Manifest::parse(text) {
                Ok(_) => panic!("{text:?} was accepted"),
                Err(e) => e,
            };
            let got: Vec<String> = errors
                .0
                .iter()
                .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
                .collect();
            assert_eq!(&got, expected, "{text:?}");
        }
    }
}
