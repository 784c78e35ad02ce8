//! Stored responses of OpenAI's Responses API (`store: true`), in the conversation database's
//! `responses` table: the response object as it was answered, and the conversation it ended
//! (chat messages: the earlier turns, the input, the reply), which a request naming it as
//! `previous_response_id` continues. Responses older than the retention are deleted whenever
//! one is stored.

use crate::store::{now_ms, Store};
use crate::Result;
use rusqlite::{params, OptionalExtension};
use serde_json::Value;
use std::time::Duration;

/// A stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The response object (`"object": "response"`) as it was answered.
    pub body: Value,
    /// The conversation through this response, as chat messages (no system instructions).
    pub messages: Vec<Value>,
}

impl Store {
    /// Stores a response under `id` (replacing one of that id), then deletes those older than
    /// `retention`.
    pub fn put_response(
        &self,
        id: &str,
        response: &StoredResponse,
        retention: Duration,
    ) -> Result<()> {
        let now = now_ms();
        let body = serde_json::to_string(&response.body)?;
        let messages = serde_json::to_string(&response.messages)?;
        let cutoff = now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let conn = self.conn()?;
        conn.execute(
            "INSERT OR REPLACE INTO responses (id, created_ms, body, messages) VALUES (?1, ?2, ?3, ?4)",
            params![id, now, body, messages],
        )?;
        let pruned = conn.execute(
            "DELETE FROM responses WHERE created_ms < ?1",
            params![cutoff],
        )?;
        if pruned > 0 {
            tracing::info!(pruned, "stored responses past their retention deleted");
        }
        Ok(())
    }

    /// The response stored under `id`, or `None`.
    pub fn get_response(&self, id: &str) -> Result<Option<StoredResponse>> {
        let conn = self.conn()?;
        let row: Option<(String, String)> = conn
            .query_row(
                "SELECT body, messages FROM responses WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(body, messages)| {
            Ok(StoredResponse {
                body: serde_json::from_str(&body)?,
                messages: serde_json::from_str(&messages)?,
            })
        })
        .transpose()
    }

    /// Deletes the response stored under `id`; false when there was none.
    pub fn delete_response(&self, id: &str) -> Result<bool> {
        let conn = self.conn()?;
        Ok(conn.execute("DELETE FROM responses WHERE id = ?1", params![id])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_are_kept_read_deleted_and_pruned() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| crate::Error::Io {
            path: "tmp".into(),
            source,
        })?;
        let path = dir.path().join("minerva.db");
        let store = Store::open(&path)?;
        let stored = StoredResponse {
            body: json!({"id": "resp_1", "object": "response"}),
            messages: vec![json!({"role": "user", "content": "hi"})],
        };
        let day = Duration::from_secs(86_400);
        store.put_response("resp_1", &stored, day)?;
        assert_eq!(store.get_response("resp_1")?, Some(stored.clone()));
        // Kept across a reopen.
        drop(store);
        let store = Store::open(&path)?;
        assert_eq!(store.get_response("resp_1")?, Some(stored.clone()));
        assert!(store.delete_response("resp_1")?);
        assert!(!store.delete_response("resp_1")?);
        assert_eq!(store.get_response("resp_1")?, None);
        // A zero retention deletes what was stored before now.
        store.put_response("resp_2", &stored, day)?;
        std::thread::sleep(Duration::from_millis(5));
        store.put_response("resp_3", &stored, Duration::ZERO)?;
        assert_eq!(store.get_response("resp_2")?, None);
        assert!(store.get_response("resp_3")?.is_some());
        Ok(())
    }
}
