//! The web portal's preview: a message rendered into the TIFF-F
//! document the line would send, in a render worker like every fax (so
//! a hostile attachment meets the same limits), handed back as bytes.

use faxmta_fax::document::DocumentMaker;
use faxmta_fax::transport::RenderFailure;
use faxmta_fax::worker::RenderWorker;
use std::path::PathBuf;
use std::sync::Arc;

/// Renders messages as the fax transport does.
pub struct Previewer {
    pub maker: DocumentMaker,
    pub worker: Arc<RenderWorker>,
    /// Where the worker writes (the fax spool); the file is removed after.
    pub spool: PathBuf,
}

impl Previewer {
    /// The TIFF-F document of `message` for `number` (blocking: call it
    /// on a blocking thread).
    pub fn document(&self, message: &[u8], number: &str) -> Result<Vec<u8>, String> {
        std::fs::create_dir_all(&self.spool)
            .map_err(|e| format!("cannot use {}: {e}", self.spool.display()))?;
        let path = self
            .spool
            .join(format!("preview-{:016x}.tif", rand::random::<u64>()));
        let made = self
            .worker
            .document(&self.maker, message, number, None, None, &path);
        let read = std::fs::read(&path);
        let _ = std::fs::remove_file(&path);
        match made {
            Ok(_) => read.map_err(|e| format!("cannot read the preview: {e}")),
            Err(RenderFailure::Message(e)) => Err(e),
            Err(RenderFailure::Local(e) | RenderFailure::Crashed(e)) => {
                Err(format!("the document cannot be made here now: {e}"))
            }
        }
    }
}
