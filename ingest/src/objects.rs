//! Object storage for video chunks and clips: `object_store` over a local
//! directory (the same interface serves S3-compatible stores once that feature is
//! turned on).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

/// Why an object could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("cannot create the object directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("bad object key {0:?}")]
    Key(String),
}

/// Where objects live.
#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
}

impl Objects {
    /// Objects as files under `dir` (created when missing).
    pub fn local(dir: &Path) -> Result<Self, ObjectError> {
        std::fs::create_dir_all(dir).map_err(|source| ObjectError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(store),
        })
    }

    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        let path = ObjectPath::parse(key).map_err(|_| ObjectError::Key(key.to_string()))?;
        self.store.put(&path, PutPayload::from(data)).await?;
        Ok(())
    }

    /// The keys directly under `prefix` (one level, like a directory listing).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let path = ObjectPath::parse(prefix).map_err(|_| ObjectError::Key(prefix.to_string()))?;
        let listed = self.store.list_with_delimiter(Some(&path)).await?;
        Ok(listed
            .objects
            .into_iter()
            .map(|o| o.location.to_string())
            .collect())
    }

    /// The object's bytes, or `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ObjectError> {
        let path = ObjectPath::parse(key).map_err(|_| ObjectError::Key(key.to_string()))?;
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
