//! The `onnxruntime` backend: ONNX Runtime through the `ort` crate, loaded at run
//! time from a shared library (`libonnxruntime.so`). Execution providers are tried
//! in the configured order (by default TensorRT → CUDA → CPU): a GPU box with a
//! TensorRT/CUDA build of ONNX Runtime uses the GPU, any other box the CPU.
//!
//! Nothing of ONNX Runtime is linked at build time, so the default build needs
//! nothing installed; a box without the library gets a clear error when this
//! backend is chosen, and the tract backend keeps working.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use crate::manifest::Manifest;
use crate::{Backend, ModelError, Tensor};

/// Environment variable naming the ONNX Runtime library when the options do not.
pub const LIBRARY_ENV: &str = "ORT_DYLIB_PATH";

/// An execution provider the backend may use, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// NVIDIA TensorRT: fastest on NVIDIA GPUs and Jetson; builds an engine per
    /// model on first use (cached when `engine_cache` is set).
    TensorRt,
    /// NVIDIA CUDA.
    Cuda,
    /// The CPU: always available, the last resort.
    Cpu,
}

impl Provider {
    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TensorRt => "tensorrt",
            Self::Cuda => "cuda",
            Self::Cpu => "cpu",
        }
    }

    /// Parses a configuration name (`tensorrt`, `cuda`, `cpu`).
    pub fn parse(name: &str) -> Option<Provider> {
        match name {
            "tensorrt" => Some(Self::TensorRt),
            "cuda" => Some(Self::Cuda),
            "cpu" => Some(Self::Cpu),
            _ => None,
        }
    }
}

/// How to load ONNX Runtime and build sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtOptions {
    /// The ONNX Runtime shared library; `None`: `$ORT_DYLIB_PATH`, else
    /// `libonnxruntime.so` from the system's library path.
    pub library: Option<PathBuf>,
    /// Threads one inference may use (ONNX Runtime's intra-op threads).
    pub threads: usize,
    /// Providers in order of preference; the first that registers is used.
    pub providers: Vec<Provider>,
    /// Where TensorRT keeps its built engines (a rebuild takes minutes on a Jetson).
    pub engine_cache: Option<PathBuf>,
    /// Let TensorRT run in FP16 where the GPU supports it.
    pub fp16: bool,
}

impl Default for OrtOptions {
    fn default() -> Self {
        OrtOptions {
            library: None,
            threads: 1,
            providers: vec![Provider::TensorRt, Provider::Cuda, Provider::Cpu],
            engine_cache: None,
            fp16: true,
        }
    }
}

/// Where this process stands with the ONNX Runtime library: it can be loaded once
/// per process, and `ort` must never be used after a failed load (its global state
/// is then unusable and the next call would panic), so a failure is remembered.
#[derive(Debug)]
enum LoadState {
    Unloaded,
    Loaded(PathBuf),
    Broken(String),
}

static LOADED: Mutex<LoadState> = Mutex::new(LoadState::Unloaded);

/// Resolves the library path from the options and the environment.
pub fn library_path(options: &OrtOptions) -> PathBuf {
    options
        .library
        .clone()
        .or_else(|| std::env::var_os(LIBRARY_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"))
}

/// The ONNX Runtime library of the `onnxruntime` Python wheel installed in the
/// virtual environment `venv` (`lib/python*/site-packages/onnxruntime/capi/
/// libonnxruntime.so.*`), if there is one: the CPU build the tests and the
/// benchmark use.
pub fn venv_library(venv: &Path) -> Option<PathBuf> {
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .find_map(|d| {
            let capi = d.path().join("site-packages/onnxruntime/capi");
            std::fs::read_dir(capi).ok()?.flatten().find_map(|f| {
                let name = f.file_name().to_string_lossy().into_owned();
                name.starts_with("libonnxruntime.so.").then(|| f.path())
            })
        })
}

/// The library the tests and benchmarks load: `$ORT_DYLIB_PATH` when set, else
/// [`venv_library`] of `venv`; the error says how to get one.
pub fn test_library(venv: &Path) -> Result<PathBuf, String> {
    std::env::var_os(LIBRARY_ENV)
        .map(PathBuf::from)
        .or_else(|| venv_library(venv))
        .ok_or_else(|| {
            format!(
                "no ONNX Runtime library in {}: run scripts/setup.sh (it installs the \
                 onnxruntime wheel) or set {LIBRARY_ENV}",
                venv.display()
            )
        })
}

/// Checks that `path` is a loadable ONNX Runtime library before `ort` sees it: a
/// wrong path then costs an error, not `ort`'s global state.
#[allow(unsafe_code)]
fn precheck(path: &Path) -> Result<(), String> {
    // SAFETY: loading a shared library runs its initialisers. This is the ONNX
    // Runtime library the operator configured, which `ort` loads right after this
    // check anyway; nothing from it is called here, only a symbol looked up.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // SAFETY: the symbol is only looked up, never called through this type.
    unsafe { lib.get::<unsafe extern "C" fn()>(b"OrtGetApiBase") }
        .map(|_| ())
        .map_err(|_| "it does not export OrtGetApiBase: not an ONNX Runtime library".into())
}

/// Loads ONNX Runtime from `path` unless this process already has: a second,
/// different library is an error (both cannot live in one process).
fn ensure_loaded(path: &Path) -> Result<(), ModelError> {
    let mut state = LOADED
        .lock()
        .map_err(|_| ModelError::Onnx("ONNX Runtime loader state is poisoned".into()))?;
    match &*state {
        LoadState::Loaded(p) if p == path => return Ok(()),
        LoadState::Loaded(p) => {
            return Err(ModelError::Onnx(format!(
                "ONNX Runtime is already loaded from {} in this process; cannot also load {}",
                p.display(),
                path.display()
            )));
        }
        LoadState::Broken(why) => {
            return Err(ModelError::Onnx(format!(
                "ONNX Runtime failed to load earlier in this process ({why}); restart after fixing it"
            )));
        }
        LoadState::Unloaded => {}
    }
    let hint = format!(
        "install ONNX Runtime, set [inference] ort_library or {LIBRARY_ENV}, or use the tract backend"
    );
    precheck(path).map_err(|why| {
        ModelError::Onnx(format!(
            "cannot load the ONNX Runtime library {}: {why} ({hint})",
            path.display()
        ))
    })?;
    match ort::init_from(path) {
        Ok(builder) => {
            // The process-wide environment, named for ONNX Runtime's logs; each
            // session sets its own thread count.
            let _ = builder.with_name("venue-edge").commit();
            *state = LoadState::Loaded(path.to_path_buf());
            Ok(())
        }
        Err(e) => {
            let why = format!("{}: {e}", path.display());
            *state = LoadState::Broken(why.clone());
            Err(ModelError::Onnx(format!(
                "cannot load the ONNX Runtime library {why} ({hint})"
            )))
        }
    }
}

/// A loaded model on ONNX Runtime.
pub struct OrtBackend {
    session: Session,
    input_shape: [usize; 4],
    provider: Provider,
}

impl std::fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtBackend")
            .field("input_shape", &self.input_shape)
            .field("provider", &self.provider)
            .finish()
    }
}

fn ort_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Onnx(e.to_string())
}

impl OrtBackend {
    /// Loads `onnx` on the first provider of `options.providers` that registers,
    /// and checks its input and output shapes against the manifest.
    pub fn new(
        manifest: &Manifest,
        onnx: &[u8],
        options: &OrtOptions,
    ) -> Result<OrtBackend, ModelError> {
        ensure_loaded(&library_path(options))?;
        let (w, h) = (
            manifest.input.width as usize,
            manifest.input.height as usize,
        );
        let input_shape = [1, 3, h, w];
        let mut builder = Session::builder()
            .map_err(ort_err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(ort_err)?
            .with_intra_threads(options.threads.max(1))
            .map_err(ort_err)?
            .with_inter_threads(1)
            .map_err(ort_err)?;
        let mut provider = None;
        let mut skipped = Vec::new();
        for p in &options.providers {
            let registered = match p {
                Provider::Cpu => Ok(()),
                Provider::TensorRt => {
                    let mut trt = ep::TensorRT::default().with_fp16(options.fp16);
                    if let Some(dir) = &options.engine_cache {
                        trt = trt
                            .with_engine_cache(true)
                            .with_engine_cache_path(dir.display())
                            .with_timing_cache(true)
                            .with_timing_cache_path(dir.display());
                    }
                    register(&trt, &mut builder)
                }
                Provider::Cuda => register(&ep::CUDA::default(), &mut builder),
            };
            match registered {
                Ok(()) => {
                    provider = Some(*p);
                    break;
                }
                Err(why) => skipped.push(format!("{}: {why}", p.as_str())),
            }
        }
        let Some(provider) = provider else {
            return Err(ModelError::Onnx(format!(
                "no execution provider could be used ({})",
                skipped.join("; ")
            )));
        };
        let session = builder
            .commit_from_memory(onnx)
            .map_err(|e| ModelError::Onnx(format!("cannot load the ONNX model: {e}")))?;
        check_shapes(&session, input_shape)?;
        Ok(OrtBackend {
            session,
            input_shape,
            provider,
        })
    }

    /// The execution provider in use.
    pub fn provider(&self) -> Provider {
        self.provider
    }
}

/// Registers a GPU provider if this ONNX Runtime build has it; the reason when not.
fn register(
    provider: &impl ExecutionProvider,
    builder: &mut ort::session::builder::SessionBuilder,
) -> Result<(), String> {
    match provider.is_available() {
        Ok(true) => provider.register(builder).map_err(|e| e.to_string()),
        Ok(false) => Err("not in this ONNX Runtime build".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// One float input that takes `1×3×H×W` (or a dynamic shape), one output.
fn check_shapes(session: &Session, input_shape: [usize; 4]) -> Result<(), ModelError> {
    let [_, _, h, w] = input_shape;
    if session.inputs().len() != 1 {
        return Err(ModelError::Mismatch(
            "the model must have exactly one input".into(),
        ));
    }
    if session.outputs().len() != 1 {
        return Err(ModelError::Mismatch(format!(
            "the model must have exactly one output, it has {}",
            session.outputs().len()
        )));
    }
    let fits = |dims: &[i64], want: [usize; 4]| {
        dims.len() == 4
            && dims
                .iter()
                .zip(want)
                .all(|(d, w)| *d < 0 || *d as usize == w)
    };
    if let Some(dims) = session.inputs()[0].dtype().tensor_shape()
        && !fits(dims, input_shape)
    {
        return Err(ModelError::Mismatch(format!(
            "the model does not take a 1x3x{h}x{w} float input (it takes {dims:?})"
        )));
    }
    if let Some(dims) = session.outputs()[0].dtype().tensor_shape()
        && !fits(dims, [1, 1, h, w])
    {
        return Err(ModelError::Mismatch(format!(
            "the output must be 1x1x{h}x{w}, the model gives {dims:?}"
        )));
    }
    Ok(())
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn infer(&mut self, input: &Tensor) -> Result<Tensor, ModelError> {
        if input.shape != self.input_shape {
            return Err(ModelError::Mismatch(format!(
                "input shape {:?}, the model takes {:?}",
                input.shape, self.input_shape
            )));
        }
        let [_, _, h, w] = self.input_shape;
        let tensor = TensorRef::from_array_view((self.input_shape, input.data.as_slice()))
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        if data.len() != h * w {
            return Err(ModelError::Inference(format!(
                "the model gave an output of shape {shape:?}, expected 1x1x{h}x{w}"
            )));
        }
        Ok(Tensor {
            shape: [1, 1, h, w],
            data: data.to_vec(),
        })
    }
}
