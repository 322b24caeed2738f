//! Segmentation models for Venue Edge: the model manifest ([`Manifest`]), one-pass
//! preprocessing from camera frames to the model input ([`prep`]), masks from the
//! model output ([`Mask`]), run-length encoding of masks ([`rle`]) and the inference
//! backends behind one trait ([`Backend`]: [`TractBackend`], pure Rust on the CPU,
//! and, with the `onnxruntime` feature, [`OrtBackend`], ONNX Runtime with TensorRT →
//! CUDA → CPU), chosen by [`BackendChoice`].
//!
//! **Boundary**: knows nothing about cameras, the pipeline, zenoh or MQTT: it takes
//! pixels and gives masks.

pub mod manifest;
pub mod mask;
#[cfg(feature = "onnxruntime")]
pub mod ort_backend;
pub mod prep;
pub mod rle;
pub mod tract_backend;

use std::path::{Path, PathBuf};

pub use manifest::{ColorOrder, InputSpec, Layout, Manifest, ManifestErrors, OutputKind};
pub use mask::Mask;
pub use tract_backend::TractBackend;

#[cfg(feature = "onnxruntime")]
pub use ort_backend::{OrtBackend, OrtOptions, Provider};

/// Which inference backend runs a model, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendChoice {
    /// tract, pure Rust on the CPU: needs nothing installed.
    Tract {
        /// Threads one inference may use.
        threads: usize,
    },
    /// ONNX Runtime, loaded at run time (TensorRT → CUDA → CPU).
    #[cfg(feature = "onnxruntime")]
    OnnxRuntime(OrtOptions),
}

impl Default for BackendChoice {
    fn default() -> Self {
        BackendChoice::Tract { threads: 1 }
    }
}

impl BackendChoice {
    /// The backend's name, as [`Backend::name`] gives it once built.
    pub fn name(&self) -> &'static str {
        match self {
            BackendChoice::Tract { .. } => "tract",
            #[cfg(feature = "onnxruntime")]
            BackendChoice::OnnxRuntime(_) => "onnxruntime",
        }
    }

    /// Builds the backend for `manifest` and `onnx`.
    pub fn build(&self, manifest: &Manifest, onnx: &[u8]) -> Result<Box<dyn Backend>, ModelError> {
        match self {
            BackendChoice::Tract { threads } => Ok(Box::new(
                TractBackend::new(manifest, onnx)?.with_threads(*threads),
            )),
            #[cfg(feature = "onnxruntime")]
            BackendChoice::OnnxRuntime(options) => {
                Ok(Box::new(OrtBackend::new(manifest, onnx, options)?))
            }
        }
    }
}

/// A model's files in memory: its manifest and ONNX bytes, from a directory or
/// the embedded reference. Cheap to share; each worker builds its own backend.
#[derive(Debug, Clone)]
pub struct ModelSource {
    pub manifest: Manifest,
    pub onnx: std::sync::Arc<[u8]>,
    /// Where it came from, for logs: a directory or `"<reference>"`.
    pub origin: String,
}

impl ModelSource {
    /// Reads and checks a model directory (`manifest.toml` + `model.onnx`).
    pub fn from_dir(dir: &Path) -> Result<ModelSource, ModelError> {
        let manifest_path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| ModelError::Io {
            path: manifest_path.clone(),
            source,
        })?;
        let manifest = Manifest::parse(&text).map_err(|errors| ModelError::Manifest {
            path: manifest_path,
            errors,
        })?;
        let onnx_path = dir.join("model.onnx");
        let onnx = std::fs::read(&onnx_path).map_err(|source| ModelError::Io {
            path: onnx_path,
            source,
        })?;
        Ok(ModelSource {
            manifest,
            onnx: onnx.into(),
            origin: dir.display().to_string(),
        })
    }

    /// The embedded reference model.
    pub fn reference() -> Result<ModelSource, ModelError> {
        let manifest =
            Manifest::parse(reference::MANIFEST).map_err(|errors| ModelError::Manifest {
                path: PathBuf::from("models/reference/manifest.toml"),
                errors,
            })?;
        Ok(ModelSource {
            manifest,
            onnx: reference::ONNX.into(),
            origin: "<reference>".into(),
        })
    }

    /// A ready model on `backend`.
    pub fn build(&self, backend: &BackendChoice) -> Result<Model, ModelError> {
        let built = backend.build(&self.manifest, &self.onnx)?;
        Ok(Model::with_backend(self.manifest.clone(), built))
    }
}

/// The reference model trained by the project (`models/reference`), embedded.
pub mod reference {
    /// `models/reference/model.onnx`.
    pub const ONNX: &[u8] = include_bytes!("../reference/model.onnx");
    /// `models/reference/manifest.toml`.
    pub const MANIFEST: &str = include_str!("../reference/manifest.toml");
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad manifest {}:\n{errors}", path.display())]
    Manifest {
        path: PathBuf,
        errors: ManifestErrors,
    },
    #[error("cannot load the ONNX model: {0}")]
    Onnx(String),
    #[error("the ONNX model does not match its manifest: {0}")]
    Mismatch(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("bad input image: {0}")]
    Image(String),
}

/// A dense NCHW float32 tensor (the model input or output).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Tensor {
    /// A zero tensor of `shape`.
    pub fn zeros(shape: [usize; 4]) -> Tensor {
        Tensor {
            shape,
            data: vec![0.0; shape.iter().product()],
        }
    }
}

/// An inference engine holding one loaded, optimised model.
pub trait Backend: Send + std::fmt::Debug {
    /// Short name for logs and benchmarks (`"tract"`).
    fn name(&self) -> &'static str;
    /// Runs the model on `input` (shape `1×3×H×W` per the manifest) and returns its
    /// output (`1×1×H×W`).
    fn infer(&mut self, input: &Tensor) -> Result<Tensor, ModelError>;
}

/// A model ready to segment frames: manifest, backend and a reused input buffer.
pub struct Model {
    manifest: Manifest,
    backend: Box<dyn Backend>,
    input: Tensor,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl Model {
    /// Loads a model directory (`manifest.toml` + `model.onnx`) on the tract backend.
    pub fn load_dir(dir: &Path) -> Result<Model, ModelError> {
        ModelSource::from_dir(dir)?.build(&BackendChoice::default())
    }

    /// The embedded reference model on the tract backend.
    pub fn reference() -> Result<Model, ModelError> {
        ModelSource::reference()?.build(&BackendChoice::default())
    }

    /// A model from a parsed manifest and ONNX bytes, on the tract backend.
    pub fn new(manifest: Manifest, onnx: &[u8]) -> Result<Model, ModelError> {
        let backend = TractBackend::new(&manifest, onnx)?;
        Ok(Model::with_backend(manifest, Box::new(backend)))
    }

    /// A model on a backend the caller built for this manifest.
    pub fn with_backend(manifest: Manifest, backend: Box<dyn Backend>) -> Model {
        let (w, h) = (
            manifest.input.width as usize,
            manifest.input.height as usize,
        );
        Model {
            manifest,
            backend,
            input: Tensor::zeros([1, 3, h, w]),
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The backend's name (`"tract"`, `"onnxruntime"`).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Segments a packed RGB frame (`width × height × 3` bytes) into a mask at model
    /// resolution (see [`Mask::resize`] for the frame's size).
    pub fn segment_rgb(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Mask, ModelError> {
        prep::rgb_to_input(
            rgb,
            width,
            height,
            &self.manifest.input,
            &mut self.input.data,
        )?;
        self.run()
    }

    /// Segments an NV12 frame (Y plane then interleaved UV) into a mask at model
    /// resolution.
    pub fn segment_nv12(
        &mut self,
        nv12: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Mask, ModelError> {
        prep::nv12_to_input(
            nv12,
            width,
            height,
            &self.manifest.input,
            &mut self.input.data,
        )?;
        self.run()
    }

    /// Segments a YUYV 4:2:2 frame into a mask at model resolution.
    pub fn segment_yuyv(
        &mut self,
        yuyv: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Mask, ModelError> {
        prep::yuyv_to_input(
            yuyv,
            width,
            height,
            &self.manifest.input,
            &mut self.input.data,
        )?;
        self.run()
    }

    fn run(&mut self) -> Result<Mask, ModelError> {
        let out = self.backend.infer(&self.input)?;
        Mask::from_output(&out, self.manifest.raw_threshold())
    }
}
