//! After a recording stops: its files go up to the recording's bucket, one at a time,
//! through the resumable uploader ([`ion_cluster::gcs`]); each local file is deleted only
//! once Cloud Storage holds an object of its size and CRC32C. A file that cannot be uploaded
//! stays on disk, and the error says where. A file already gone was uploaded by an earlier
//! pass that did not get to mark it.

use std::path::Path;

use ion_cluster::compute::Auth;
use ion_cluster::gcs::{BucketPath, StorageConfig, Uploader};
use ion_cluster::model::RecordedFile;

/// How this node reaches Cloud Storage.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub base_url: String,
    pub auth: Auth,
}

/// Uploads every file of `files` not yet uploaded from `dir` under
/// `gs://bucket/prefix/<dir name>/`, calling `progress` after each one.
pub async fn upload_all(
    settings: &UploadSettings,
    bucket: &BucketPath,
    dir: &Path,
    files: &mut [RecordedFile],
    mut progress: impl FnMut(&[RecordedFile]),
) -> Result<(), String> {
    let mut config = StorageConfig::new(settings.auth.clone());
    config.base_url.clone_from(&settings.base_url);
    let uploader = Uploader::new(config)
        .map_err(|e| format!("cannot upload to gs://{}: {e}", bucket.bucket))?;
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for i in 0..files.len() {
        if files[i].uploaded.is_some() {
            continue;
        }
        let path = dir.join(&files[i].name);
        let object = bucket.object(&format!("{folder}/{}", files[i].name));
        if !path.exists() {
            // A recorded file is deleted only here, once Cloud Storage holds it whole: one
            // that is gone went up in an earlier pass whose mark did not reach the record
            // (killed between the delete and the record's write).
            tracing::warn!(file = %path.display(), "already uploaded and deleted by an earlier pass; marking it");
            files[i].uploaded = Some(format!("gs://{}/{object}", bucket.bucket));
            progress(files);
            continue;
        }
        let uploaded = uploader
            .upload_file(&path, &bucket.bucket, &object)
            .await
            .map_err(|e| {
                format!(
                    "uploading {} to gs://{}/{object}: {e}; the file stays in {}",
                    files[i].name,
                    bucket.bucket,
                    dir.display()
                )
            })?;
        tracing::info!(file = %path.display(), url = %uploaded.url, bytes = uploaded.bytes, requests = uploaded.requests, "uploaded");
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(file = %path.display(), %error, "uploaded, but the local file could not be deleted");
        }
        files[i].uploaded = Some(uploaded.url);
        progress(files);
    }
    // The directory goes too once every file is up (it is empty then).
    let _ = std::fs::remove_dir(dir);
    Ok(())
}
