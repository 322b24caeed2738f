//! The `[inference]` section: which backend runs which segmentation model, with
//! how many workers and threads.

use std::path::PathBuf;

use venue_models::BackendChoice;

use super::{Ctx, NameList, TableWalk, boolean, int_or, name_list, string};
use crate::inference::InferenceConfig;

/// Keys of `[inference]`.
pub(super) const KEYS: &[&str] = &[
    "backend",
    "model",
    "workers",
    "threads",
    "ort_library",
    "providers",
    "engine_cache",
    "fp16",
];

/// An optional path key: absent or `""` is `None`.
fn path(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>, key: &'static str) -> Option<Option<PathBuf>> {
    match string(ctx, t, key) {
        None => Some(None),
        Some(None) => None,
        Some(Some((s, _))) if s.is_empty() => Some(None),
        Some(Some((s, _))) => Some(Some(PathBuf::from(s))),
    }
}

pub(super) fn inference(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>) -> Option<InferenceConfig> {
    let backend = match string(ctx, t, "backend") {
        None => Some("tract".to_string()),
        Some(None) => None,
        Some(Some((s, span))) => {
            let known = ["tract", "onnxruntime"];
            if known.contains(&s.as_str()) {
                if s == "onnxruntime" && !cfg!(feature = "onnxruntime") {
                    ctx.error(span, "inference.backend: this build has no onnxruntime backend (built without the `onnxruntime` feature)".into());
                    None
                } else {
                    Some(s)
                }
            } else {
                ctx.error(
                    span,
                    format!("inference.backend: \"{s}\" is not a backend; expected one of: tract, onnxruntime"),
                );
                None
            }
        }
    };
    let model = path(ctx, t, "model");
    let workers = int_or(ctx, t, "workers", 1..=64, 1);
    let threads = int_or(ctx, t, "threads", 1..=64, 1);
    let library = path(ctx, t, "ort_library");
    let engine_cache = path(ctx, t, "engine_cache");
    let fp16 = boolean(ctx, t, "fp16", true);
    let providers = providers(ctx, t);
    let (backend, threads) = (backend?, threads? as usize);
    let (library, engine_cache, fp16, providers) = (library?, engine_cache?, fp16?, providers?);
    let choice = match backend.as_str() {
        #[cfg(feature = "onnxruntime")]
        "onnxruntime" => BackendChoice::OnnxRuntime(venue_models::OrtOptions {
            library,
            threads,
            providers,
            engine_cache,
            fp16,
        }),
        _ => {
            let _ = (library, engine_cache, fp16, providers);
            BackendChoice::Tract { threads }
        }
    };
    Some(InferenceConfig {
        backend: choice,
        model: model?,
        workers: workers? as usize,
    })
}

#[cfg(feature = "onnxruntime")]
type Providers = Vec<venue_models::Provider>;
#[cfg(not(feature = "onnxruntime"))]
type Providers = Vec<String>;

/// `providers = ["tensorrt", "cuda", "cpu"]`: ONNX Runtime's execution providers in
/// order of preference.
fn providers(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>) -> Option<Providers> {
    let spec = NameList {
        what: "provider",
        expected: "tensorrt, cuda, cpu",
        parse: &parse_provider,
        non_empty: true,
        unique: false,
    };
    name_list(ctx, t, "providers", &spec).unwrap_or_else(|| Some(default_providers()))
}

#[cfg(feature = "onnxruntime")]
fn default_providers() -> Providers {
    venue_models::OrtOptions::default().providers
}
#[cfg(not(feature = "onnxruntime"))]
fn default_providers() -> Providers {
    Vec::new()
}

#[cfg(feature = "onnxruntime")]
fn parse_provider(s: &str) -> Option<venue_models::Provider> {
    venue_models::Provider::parse(s)
}
#[cfg(not(feature = "onnxruntime"))]
fn parse_provider(s: &str) -> Option<String> {
    ["tensorrt", "cuda", "cpu"]
        .contains(&s)
        .then(|| s.to_string())
}
