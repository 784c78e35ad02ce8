//! The Responses API's kept responses (`minerva_server::ResponseStore`), in the UI's
//! conversation database (`minerva_ui::Store`): the one place the two crates meet.

use std::sync::Arc;

/// The Responses API's kept responses, in the conversation database.
pub struct KeptResponses {
    pub store: Arc<minerva_ui::Store>,
    pub retention: std::time::Duration,
}

impl minerva_server::ResponseStore for KeptResponses {
    fn put(&self, id: &str, stored: &minerva_server::StoredResponse) -> Result<(), String> {
        let stored = minerva_ui::StoredResponse {
            body: stored.body.clone(),
            messages: stored.messages.clone(),
        };
        self.store
            .put_response(id, &stored, self.retention)
            .map_err(|e| e.to_string())
    }

    fn get(&self, id: &str) -> Result<Option<minerva_server::StoredResponse>, String> {
        let found = self.store.get_response(id).map_err(|e| e.to_string())?;
        Ok(found.map(|s| minerva_server::StoredResponse {
            body: s.body,
            messages: s.messages,
        }))
    }

    fn delete(&self, id: &str) -> Result<bool, String> {
        self.store.delete_response(id).map_err(|e| e.to_string())
    }
}
