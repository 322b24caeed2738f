//! The `tract` backend: pure Rust, CPU, nothing to install. The ONNX graph is
//! loaded with the manifest's static input shape, optimised once and kept as a
//! runnable plan; each inference reuses it.

use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;

use crate::manifest::Manifest;
use crate::{Backend, ModelError, Tensor};

type TractTensor = tract_onnx::prelude::Tensor;

/// A loaded, optimised model on tract.
pub struct TractBackend {
    plan: Arc<TypedRunnableModel>,
    input_shape: [usize; 4],
    /// Runs the matrix products: this thread alone, or a private pool.
    executor: Executor,
}

impl std::fmt::Debug for TractBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackend")
            .field("input_shape", &self.input_shape)
            .finish()
    }
}

impl TractBackend {
    /// Loads `onnx` for the manifest's input shape and checks that the output is
    /// `1×1×H×W` at the input's size.
    pub fn new(manifest: &Manifest, onnx: &[u8]) -> Result<TractBackend, ModelError> {
        let (w, h) = (
            manifest.input.width as usize,
            manifest.input.height as usize,
        );
        let input_shape = [1, 3, h, w];
        let onnx_err = |e: TractError| ModelError::Onnx(format!("{e:#}"));
        let mut reader = onnx;
        let model = tract_onnx::onnx()
            .model_for_read(&mut reader)
            .map_err(onnx_err)?;
        if model.input_outlets().map_err(onnx_err)?.len() != 1 {
            return Err(ModelError::Mismatch(
                "the model must have exactly one input".into(),
            ));
        }
        let model = model
            .with_input_fact(0, InferenceFact::dt_shape(DatumType::F32, input_shape))
            .map_err(|e| {
                ModelError::Mismatch(format!(
                    "the model does not take a 1x3x{h}x{w} float input: {e:#}"
                ))
            })?;
        let typed = model.into_optimized().map_err(|e| {
            ModelError::Mismatch(format!(
                "the model cannot run on a 1x3x{h}x{w} float input: {e:#}"
            ))
        })?;
        let outputs = typed.output_outlets().map_err(onnx_err)?.to_vec();
        let [out] = outputs.as_slice() else {
            return Err(ModelError::Mismatch(format!(
                "the model must have exactly one output, it has {}",
                outputs.len()
            )));
        };
        let fact = typed.outlet_fact(*out).map_err(onnx_err)?;
        let shape: Option<Vec<usize>> = fact.shape.as_concrete().map(<[usize]>::to_vec);
        if shape.as_deref() != Some(&[1, 1, h, w][..]) {
            return Err(ModelError::Mismatch(format!(
                "the output must be 1x1x{h}x{w}, the model gives {:?}",
                fact.shape
            )));
        }
        let plan = typed.into_runnable().map_err(onnx_err)?;
        Ok(TractBackend {
            plan,
            input_shape,
            executor: Executor::SingleThread,
        })
    }

    /// Lets one inference use `threads` threads (a private pool; 1 = this thread).
    pub fn with_threads(mut self, threads: usize) -> TractBackend {
        self.executor = if threads > 1 {
            Executor::multithread_with_name(threads, "tract")
        } else {
            Executor::SingleThread
        };
        self
    }
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn infer(&mut self, input: &Tensor) -> Result<Tensor, ModelError> {
        if input.shape != self.input_shape {
            return Err(ModelError::Mismatch(format!(
                "input shape {:?}, the model takes {:?}",
                input.shape, self.input_shape
            )));
        }
        let t = TractTensor::from_shape(&self.input_shape, &input.data)
            .map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        let inputs: TVec<TValue> = tvec!(t.into());
        let plan = &self.plan;
        let outputs = multithread_tract_scope(self.executor.clone(), || plan.run(inputs))
            .map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        let out = outputs
            .first()
            .ok_or_else(|| ModelError::Inference("the model gave no output".into()))?;
        let view = out
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        let [_, _, h, w] = self.input_shape;
        Ok(Tensor {
            shape: [1, 1, h, w],
            data: view.iter().copied().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Model, reference};

    fn manifest() -> Result<Manifest, ModelError> {
        Manifest::parse(reference::MANIFEST).map_err(|errors| ModelError::Manifest {
            path: "reference".into(),
            errors,
        })
    }

    #[test]
    fn reference_model_runs_at_its_size() -> Result<(), ModelError> {
        let mut model = Model::reference()?;
        let (w, h) = (
            model.manifest().input.width as usize,
            model.manifest().input.height as usize,
        );
        let grey = vec![128u8; w * h * 3];
        let mask = model.segment_rgb(&grey, w, h)?;
        assert_eq!((mask.width, mask.height), (w, h));
        // A featureless grey frame holds no athlete.
        assert!(mask.count() < w * h / 100, "{} pixels", mask.count());
        Ok(())
    }

    #[test]
    fn garbage_is_not_a_model() -> Result<(), ModelError> {
        match TractBackend::new(&manifest()?, b"not an onnx file") {
            Err(ModelError::Onnx(_)) => Ok(()),
            other => panic!("expected an ONNX error, got {other:?}"),
        }
    }

    #[test]
    fn manifest_size_the_model_cannot_take() -> Result<(), ModelError> {
        let mut m = manifest()?;
        // Three 2x poolings and their up-convolutions need sides divisible by 8.
        m.input.width = 250;
        match TractBackend::new(&m, reference::ONNX) {
            Err(ModelError::Mismatch(msg)) => {
                assert!(msg.contains("1x3x144x250"), "{msg}");
                Ok(())
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn wrong_input_shape_is_an_error() -> Result<(), ModelError> {
        let mut b = TractBackend::new(&manifest()?, reference::ONNX)?;
        assert!(matches!(
            b.infer(&Tensor::zeros([1, 3, 8, 8])),
            Err(ModelError::Mismatch(_))
        ));
        Ok(())
    }
}
