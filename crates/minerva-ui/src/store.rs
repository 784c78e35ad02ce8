//! The conversation store: one SQLite file (rusqlite, SQLite compiled in), written in WAL mode
//! so that readers never wait on a writer, with a busy timeout so that two writers (two
//! servers on one file, or two handlers at once) wait for each other instead of failing. Write
//! transactions begin IMMEDIATE: one that began by reading would have to upgrade its lock, and
//! in WAL mode SQLite fails such an upgrade at once (SQLITE_BUSY, no waiting) when another
//! writer committed in between.
//!
//! A conversation holds its settings (model, system prompt, sampling) and its messages in
//! order. The UI replaces a conversation's messages as a whole after each turn: a reply that
//! was regenerated, or a user message edited and resent, simply drops what followed it.
//!
//! A message's content is text, or OpenAI content parts (text, and images as `data:image/`
//! URIs) as the UI attached them ([`Content`]). A message with parts keeps its text in the
//! `content` column (what search looks through, never the images' base64) and the parts as
//! JSON in `parts`.

use crate::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a writer waits for another writer's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema; `user_version` says which one a file holds. Version 2 added `messages.parts`
/// (a file of version 1 gains the column when opened).
const SCHEMA_VERSION: i64 = 2;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    model      TEXT,
    system     TEXT NOT NULL DEFAULT '',
    settings   TEXT NOT NULL DEFAULT '{}',
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    stats           TEXT,
    parts           TEXT,
    PRIMARY KEY (conversation_id, position)
);
CREATE TABLE IF NOT EXISTS responses (
    id         TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    body       TEXT NOT NULL,
    messages   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_ms);
";

/// A conversation without its messages, as the list shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub id: String,
    pub title: String,
    pub model: Option<String>,
    pub system: String,
    /// Sampling settings as the UI keeps them (temperature, top_p, top_k, max_tokens, seed).
    pub settings: Value,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// One message. `stats` is what the UI measured for a reply (tokens, time to first token,
/// tokens per second), kept as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Content,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
}

/// A message's content, as OpenAI's chat API has it: text, or an array of parts, each
/// `{"type": "text", "text": ...}` or `{"type": "image_url", "image_url": {"url":
/// "data:image/...;base64,..."}}` (kept as given, other fields included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "content must be a string or an array of content parts"
)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
}

impl Content {
    /// The text: the text itself, or the text parts joined by newlines.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Content::Text(text) => Cow::Borrowed(text),
            Content::Parts(parts) => Cow::Owned(
                parts
                    .iter()
                    .filter(|p| p["type"] == "text")
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }

    /// Refuses parts the UI cannot show or send back: each must be a text part with its text,
    /// or an image given inline as a `data:image/` URI (never a URL to fetch).
    fn check(&self, position: usize) -> Result<()> {
        let Content::Parts(parts) = self else {
            return Ok(());
        };
        let bad = |message: String| Err(Error::Invalid(format!("message {position}: {message}")));
        if parts.is_empty() {
            return bad("content has no parts".into());
        }
        for (i, part) in parts.iter().enumerate() {
            match part["type"].as_str() {
                Some("text") if part["text"].is_string() => {}
                Some("text") => return bad(format!("part {i}: a text part needs its 'text'")),
                Some("image_url") => {
                    let url = part["image_url"]["url"].as_str().unwrap_or_default();
                    if !url.starts_with("data:image/") {
                        return bad(format!(
                            "part {i}: an image_url part needs image_url.url, a data:image/... URI"
                        ));
                    }
                }
                _ => return bad(format!("part {i}: type must be text or image_url")),
            }
        }
        Ok(())
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Content {
        Content::Text(text.to_string())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Content {
        Content::Text(text)
    }
}

/// A conversation with its messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(flatten)]
    pub summary: Summary,
    pub messages: Vec<Message>,
}

/// The fields a create or an update sets; absent fields keep their value (or take the default
/// on create).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Changes {
    pub title: Option<String>,
    /// `Some(None)` (JSON `null`) clears the model.
    #[serde(default, deserialize_with = "double_option")]
    pub model: Option<Option<String>>,
    pub system: Option<String>,
    pub settings: Option<Value>,
    pub messages: Option<Vec<Message>>,
}

fn double_option<'de, D>(de: D) -> std::result::Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(de).map(Some)
}

const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// The store. Cheap to share behind an `Arc`; every call is blocking (run it off the async
/// threads).
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, and its folder.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                path: path.to_path_buf(),
                version,
            });
        }
        // One writer at a time creates or migrates the schema (two servers may open one file).
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        migrate(&tx)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        tracing::debug!(path = %path.display(), "conversation store open");
        Ok(Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Poisoned)
    }

    /// Conversations, most recently updated first; `search` keeps those whose title or any
    /// message contains it (case-insensitive for ASCII).
    pub fn list(&self, search: Option<&str>) -> Result<Vec<Summary>> {
        let conn = self.conn()?;
        let pattern = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| format!("%{}%", escape_like(s)));
        let mut stmt = conn.prepare(
            "SELECT id, title, model, system, settings, created_ms, updated_ms
             FROM conversations c
             WHERE ?1 IS NULL OR title LIKE ?1 ESCAPE '\\' OR EXISTS (
                 SELECT 1 FROM messages m
                 WHERE m.conversation_id = c.id AND m.content LIKE ?1 ESCAPE '\\')
             ORDER BY updated_ms DESC, rowid DESC",
        )?;
        let rows = stmt.query_map(params![pattern], summary_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// A conversation with its messages, or `None`.
    pub fn get(&self, id: &str) -> Result<Option<Conversation>> {
        let conn = self.conn()?;
        read(&conn, id)
    }

    /// Creates a conversation from `changes` (title "New chat" unless given).
    pub fn create(&self, changes: Changes) -> Result<Conversation> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO conversations (id, title, model, system, settings, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                     max(?6, (SELECT coalesce(max(updated_ms), 0) + 1 FROM conversations)))",
            params![
                id,
                changes.title.as_deref().unwrap_or("New chat"),
                changes.model.clone().flatten(),
                changes.system.as_deref().unwrap_or(""),
                settings_text(changes.settings.as_ref())?,
                now,
            ],
        )?;
        if let Some(messages) = &changes.messages {
            write_messages(&tx, &id, messages)?;
        }
        tx.commit()?;
        read(&conn, &id)?.ok_or(Error::NotFound)
    }

    /// Applies `changes`; `None` when there is no such conversation.
    pub fn update(&self, id: &str, changes: Changes) -> Result<Option<Conversation>> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM conversations WHERE id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            return Ok(None);
        }
        if let Some(title) = &changes.title {
            tx.execute(
                "UPDATE conversations SET title = ?2 WHERE id = ?1",
                params![id, title],
            )?;
        }
        if let Some(model) = &changes.model {
            tx.execute(
                "UPDATE conversations SET model = ?2 WHERE id = ?1",
                params![id, model],
            )?;
        }
        if let Some(system) = &changes.system {
            tx.execute(
                "UPDATE conversations SET system = ?2 WHERE id = ?1",
                params![id, system],
            )?;
        }
        if changes.settings.is_some() {
            tx.execute(
                "UPDATE conversations SET settings = ?2 WHERE id = ?1",
                params![id, settings_text(changes.settings.as_ref())?],
            )?;
        }
        if let Some(messages) = &changes.messages {
            tx.execute("DELETE FROM messages WHERE conversation_id = ?1", [id])?;
            write_messages(&tx, id, messages)?;
        }
        tx.execute(
            // Strictly the newest, even when two writes fall in one millisecond, so "most
            // recently updated first" is exact.
            "UPDATE conversations
             SET updated_ms = max(?2, (SELECT coalesce(max(updated_ms), 0) + 1 FROM conversations))
             WHERE id = ?1",
            params![id, now_ms()],
        )?;
        tx.commit()?;
        read(&conn, id)
    }

    /// Deletes a conversation and its messages; false when there was none.
    pub fn delete(&self, id: &str) -> Result<bool> {
        let conn = self.conn()?;
        Ok(conn.execute("DELETE FROM conversations WHERE id = ?1", [id])? > 0)
    }
}

/// Brings a file of an older schema up to this one (`CREATE TABLE IF NOT EXISTS` left its
/// tables as they were).
fn migrate(conn: &Connection) -> Result<()> {
    let has_parts: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('messages') WHERE name = 'parts'",
        [],
        |r| r.get(0),
    )?;
    if !has_parts {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN parts TEXT")?;
        tracing::info!("conversation store: messages can now hold images (schema 2)");
    }
    Ok(())
}

fn read(conn: &Connection, id: &str) -> Result<Option<Conversation>> {
    let summary = conn
        .query_row(
            "SELECT id, title, model, system, settings, created_ms, updated_ms
             FROM conversations WHERE id = ?1",
            [id],
            summary_row,
        )
        .optional()?;
    let Some(summary) = summary else {
        return Ok(None);
    };
    let mut stmt = conn.prepare(
        "SELECT role, content, stats, parts FROM messages WHERE conversation_id = ?1
         ORDER BY position",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut messages = Vec::new();
    for row in rows {
        let (role, text, stats, parts) = row?;
        let stats = stats.map(|s| serde_json::from_str(&s)).transpose()?;
        let content = match parts {
            Some(parts) => Content::Parts(serde_json::from_str(&parts)?),
            None => Content::Text(text),
        };
        messages.push(Message {
            role,
            content,
            stats,
        });
    }
    Ok(Some(Conversation { summary, messages }))
}

/// A row as a summary; the settings column is JSON that this store wrote.
fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    let settings: String = r.get(4)?;
    let settings = serde_json::from_str(&settings).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Summary {
        id: r.get(0)?,
        title: r.get(1)?,
        model: r.get(2)?,
        system: r.get(3)?,
        settings,
        created_ms: r.get(5)?,
        updated_ms: r.get(6)?,
    })
}

fn write_messages(tx: &rusqlite::Transaction<'_>, id: &str, messages: &[Message]) -> Result<()> {
    let mut stmt = tx.prepare(
        "INSERT INTO messages (conversation_id, position, role, content, stats, parts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (position, m) in messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(Error::Invalid(format!(
                "message {position}: role must be system, user or assistant, not '{}'",
                m.role
            )));
        }
        m.content.check(position)?;
        let stats = m.stats.as_ref().map(serde_json::to_string).transpose()?;
        let parts = match &m.content {
            Content::Text(_) => None,
            Content::Parts(parts) => Some(serde_json::to_string(parts)?),
        };
        stmt.execute(params![
            id,
            position as i64,
            m.role,
            m.content.text(),
            stats,
            parts
        ])?;
    }
    Ok(())
}

fn settings_text(settings: Option<&Value>) -> Result<String> {
    match settings {
        None => Ok("{}".into()),
        Some(v @ Value::Object(_)) => Ok(serde_json::to_string(v)?),
        Some(_) => Err(Error::Invalid("settings must be a JSON object".into())),
    }
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
