//! Object storage for video chunks, composites and thumbnails: `object_store` over a
//! local directory (one machine) or an S3-compatible bucket (`s3://BUCKET/PREFIX`),
//! chosen by the `--objects` location.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, GetResult, ObjectStore, PutPayload, RetryConfig};

/// How long the start-up check of an S3 location may take before the endpoint
/// counts as unreachable.
const S3_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an object could not be read or written, or a location not opened.
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
    #[error("object location {location:?}: {reason}")]
    Location { location: String, reason: String },
    #[error("S3 endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot use {location}: {reason}")]
    Unreachable { location: String, reason: String },
}

/// Settings of an S3-compatible store that are not part of its `s3://` URL. What
/// is left out comes from the standard AWS environment variables
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint of an S3-compatible server, e.g. `https://minio.example:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Permit a plain-HTTP endpoint (a test server on loopback); off, `http://` is
    /// refused, so credentials never cross a network unencrypted by accident.
    pub allow_http: bool,
}

/// Where objects live, parsed from `--objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory (created when missing).
    Local(std::path::PathBuf),
    /// An S3 bucket and a key prefix inside it (possibly empty).
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `s3://BUCKET[/PREFIX]`, or anything else as a local directory.
    pub fn parse(spec: &str) -> Result<Self, ObjectError> {
        let bad = |reason: &str| ObjectError::Location {
            location: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec.trim().is_empty() {
            return Err(bad("empty; expected a directory or s3://BUCKET/PREFIX"));
        }
        let Some((scheme, rest)) = spec.split_once("://") else {
            return Ok(Self::Local(spec.into()));
        };
        if scheme != "s3" {
            return Err(bad(
                "unsupported scheme; expected a directory or s3://BUCKET/PREFIX",
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules; anything else would fail at the first request
        // with a less helpful message.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && bucket
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !valid_bucket {
            return Err(bad(
                "bucket must be 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() && ObjectPath::parse(prefix).is_err() {
            return Err(bad(
                "the key prefix after the bucket has an empty, '.' or '..' part",
            ));
        }
        Ok(Self::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// Checks an endpoint URL: `https://HOST[:PORT]`, or `http://` with `allow_http`.
fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<(), ObjectError> {
    let bad = |reason: &str| ObjectError::Endpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let rest = if let Some(r) = endpoint.strip_prefix("https://") {
        r
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        if !allow_http {
            return Err(bad(
                "plain HTTP refused; pass --s3-allow-http (or AWS_ALLOW_HTTP=true) for a test server on loopback",
            ));
        }
        r
    } else {
        return Err(bad(
            "expected https://HOST[:PORT] (or http:// with --s3-allow-http)",
        ));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(bad(
            "expected https://HOST[:PORT] with a host and a port 1-65535",
        ));
    }
    Ok(())
}

/// Where objects live.
#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// The location as given, for messages.
    location: String,
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
            location: dir.display().to_string(),
        })
    }

    /// Opens `--objects`: a directory, or an S3 bucket that is checked by listing
    /// its prefix once, so a wrong endpoint, bucket or credentials fail at start-up
    /// with the reason instead of at the first stored video chunk.
    pub async fn open(spec: &str, s3: &S3Options) -> Result<Self, ObjectError> {
        match Location::parse(spec)? {
            Location::Local(dir) => Self::local(&dir),
            Location::S3 { bucket, prefix } => {
                let me = Self::s3(spec, &bucket, &prefix, s3)?;
                me.probe().await?;
                Ok(me)
            }
        }
    }

    fn s3(spec: &str, bucket: &str, prefix: &str, o: &S3Options) -> Result<Self, ObjectError> {
        // Flags win over the environment; the environment's AWS_ALLOW_HTTP counts
        // as asking explicitly too.
        let env_allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true");
        let allow_http = o.allow_http || env_allow_http;
        // The client options go first: setting them replaces every client setting
        // made before, plain-HTTP permission included.
        let mut b = AmazonS3Builder::from_env()
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(30)),
            )
            .with_bucket_name(bucket);
        let endpoint = o.endpoint.clone().or_else(|| {
            std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .ok()
        });
        if let Some(e) = &endpoint {
            check_endpoint(e, allow_http)?;
            // S3-compatible servers (MinIO, Ceph, moto) address buckets by path.
            b = b
                .with_endpoint(e.clone())
                .with_virtual_hosted_style_request(false);
        }
        if let Some(r) = &o.region {
            b = b.with_region(r.clone());
        }
        let store = b
            // Bounded retries: a batch whose objects cannot be written is not
            // acknowledged (the box resends), so waiting minutes gains nothing.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| ObjectError::Location {
                location: spec.to_string(),
                reason: e.to_string(),
            })?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(Self {
            store,
            location: spec.to_string(),
        })
    }

    async fn probe(&self) -> Result<(), ObjectError> {
        let unreachable = |reason: String| ObjectError::Unreachable {
            location: self.location.clone(),
            reason,
        };
        match tokio::time::timeout(S3_PROBE_TIMEOUT, self.store.list_with_delimiter(None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable(format!(
                "no answer within {} s",
                S3_PROBE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The location as given (a directory or `s3://BUCKET/PREFIX`).
    pub fn location(&self) -> &str {
        &self.location
    }

    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        self.store
            .put(&object_path(key)?, PutPayload::from(data))
            .await?;
        Ok(())
    }

    /// The keys directly under `prefix` (one level, like a directory listing).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&object_path(prefix)?))
            .await?;
        Ok(listed
            .objects
            .into_iter()
            .map(|o| o.location.to_string())
            .collect())
    }

    /// Whether the object exists (a `HEAD`, nothing read).
    pub async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        Ok(self.size(key).await?.is_some())
    }

    /// The object's size in bytes (a `HEAD`), or `None` when there is no such
    /// object.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, ObjectError> {
        let meta = found(self.store.head(&object_path(key)?).await)?;
        Ok(meta.map(|m| m.size))
    }

    /// Bytes `range` of the object (only those are read), or `None` when there
    /// is no such object.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Bytes>, ObjectError> {
        found(self.store.get_range(&object_path(key)?, range).await)
    }

    /// The object to read as it arrives (`into_stream`), for serving large
    /// objects without holding them whole; `None` when there is no such object.
    pub async fn open_read(&self, key: &str) -> Result<Option<GetResult>, ObjectError> {
        found(self.store.get(&object_path(key)?).await)
    }

    /// The object's bytes, or `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ObjectError> {
        match self.open_read(key).await? {
            Some(r) => Ok(Some(r.bytes().await?)),
            None => Ok(None),
        }
    }
}

/// `key` as an object path; a key it cannot be is an error naming it.
fn object_path(key: &str) -> Result<ObjectPath, ObjectError> {
    ObjectPath::parse(key).map_err(|_| ObjectError::Key(key.to_string()))
}

/// A store's answer, with "no such object" as `None`.
fn found<T>(r: object_store::Result<T>) -> Result<Option<T>, ObjectError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_or_say_why_not() {
        assert_eq!(
            Location::parse("s3://clips/venue-a/").unwrap(),
            Location::S3 {
                bucket: "clips".into(),
                prefix: "venue-a".into()
            }
        );
        assert_eq!(
            Location::parse("s3://clips").unwrap(),
            Location::S3 {
                bucket: "clips".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Location::parse(".run/objects").unwrap(),
            Location::Local(".run/objects".into())
        );
        for bad in [
            "",
            "gs://clips/x",
            "s3://",
            "s3://ab",
            "s3://Upper/x",
            "s3://-clips/x",
            "s3://clips/a//b",
            "s3://clips/../x",
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains("object location"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn endpoints_need_https_unless_http_is_asked_for() {
        assert!(check_endpoint("https://s3.example.com", false).is_ok());
        assert!(check_endpoint("https://minio.local:9000", false).is_ok());
        assert!(check_endpoint("http://127.0.0.1:9000", true).is_ok());
        let e = check_endpoint("http://127.0.0.1:9000", false).unwrap_err();
        assert!(e.to_string().contains("--s3-allow-http"), "{e}");
        for bad in [
            "ftp://x",
            "https://",
            "https://host:99999",
            "127.0.0.1:9000",
        ] {
            assert!(check_endpoint(bad, true).is_err(), "{bad}");
        }
    }
}
