//! PostgreSQL backend, for deployments that already run a database server.
//!
//! Why `UNNEST`: a page's records of one table are sent as one statement whose parameters are
//! column arrays (`INSERT … SELECT * FROM UNNEST($1::text[], …) ON CONFLICT …`), so a page costs
//! a handful of round trips whatever its size, and the SQL text is fixed (prepared once per
//! connection). `ON CONFLICT DO UPDATE` may not touch a row twice in one statement, which is why
//! [`Plan`] deduplicates record names first.

use std::time::Duration;

use async_trait::async_trait;
use imessage::records::{AttachmentRecord, ChatRecord, MessageRecord, RecordChange};
use sqlx::postgres::{PgConnection, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres};

use crate::db::{self, Db, Param};
use crate::error::Result;
use crate::migrations;
use crate::values::{self, json_strings, Plan};
use crate::zones::{self, FailedRecord, PageCommit, PageWriter};

const MAX_CONNECTIONS: u32 = 8;
/// How long a statement waits for a free connection of the pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL-backed [`Store`](crate::Store).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `postgres://…` and applies pending migrations.
    pub async fn open(uri: &str) -> Result<Self> {
        let pool = PgPoolOptions::new().max_connections(MAX_CONNECTIONS).acquire_timeout(ACQUIRE_TIMEOUT).connect(uri).await?;
        migrations::run_postgres(&pool).await?;
        Ok(PostgresStore { pool })
    }

    async fn tx(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

async fn upsert_chats(conn: &mut PgConnection, rows: &[&ChatRecord]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO chat_records (record_name, chat_id, group_id, style, display_name, participants, service, \
           modified_ms) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], \
           $8::int8[]) \
         ON CONFLICT (record_name) DO UPDATE SET chat_id = EXCLUDED.chat_id, group_id = EXCLUDED.group_id, \
           style = EXCLUDED.style, display_name = EXCLUDED.display_name, participants = EXCLUDED.participants, \
           service = EXCLUDED.service, modified_ms = EXCLUDED.modified_ms",
    )
    .bind(rows.iter().map(|c| c.record_name.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.chat_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.group_id.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.style).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.display_name.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| json_strings(&c.participants)).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.service.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.modified_ms).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_messages(conn: &mut PgConnection, rows: &[&MessageRecord]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // NULL for the (usual) empty content: serialized only for messages that have some.
    let contents = rows.iter().map(|m| values::content_to_db(&m.content)).collect::<Result<Vec<_>>>()?;
    let names = rows.iter().map(|m| m.record_name.as_str()).collect::<Vec<_>>();
    let texts = rows.iter().map(|m| m.text.as_deref()).collect::<Vec<_>>();
    let flags = rows.iter().map(|m| values::flags_to_db(m.flags)).collect::<Vec<_>>();
    sqlx::query(crate::revisions::PG_NOTE_CHANGED).bind(&names).bind(&texts).bind(&contents).bind(&flags).execute(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO messages (record_name, guid, chat_id, sender, flags, ts_ms, text, subject, associated_type, \
           associated_guid, service, content) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[], \
           $8::text[], $9::int8[], $10::text[], $11::text[], $12::text[]) \
         ON CONFLICT (record_name) DO UPDATE SET guid = EXCLUDED.guid, chat_id = EXCLUDED.chat_id, \
           sender = EXCLUDED.sender, flags = EXCLUDED.flags, ts_ms = EXCLUDED.ts_ms, text = EXCLUDED.text, \
           subject = EXCLUDED.subject, associated_type = EXCLUDED.associated_type, \
           associated_guid = EXCLUDED.associated_guid, service = EXCLUDED.service, content = EXCLUDED.content",
    )
    .bind(names)
    .bind(rows.iter().map(|m| m.guid.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.chat_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.sender.as_str()).collect::<Vec<_>>())
    .bind(flags)
    .bind(rows.iter().map(|m| m.ts_ms).collect::<Vec<_>>())
    .bind(texts)
    .bind(rows.iter().map(|m| m.subject.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.associated_type.map(i64::from)).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.associated_guid.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.service.as_deref()).collect::<Vec<_>>())
    .bind(contents)
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_attachments(conn: &mut PgConnection, rows: &[&AttachmentRecord]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sizes = rows.iter().map(|a| values::asset_size_to_db(a.asset_size)).collect::<Result<Vec<_>>>()?;
    let details = rows.iter().map(|a| values::details_to_db(&a.details)).collect::<Result<Vec<_>>>()?;
    sqlx::query(
        "INSERT INTO attachments (record_name, guid, mime_type, filename, total_bytes, asset_size, details) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[]) \
         ON CONFLICT (record_name) DO UPDATE SET guid = EXCLUDED.guid, mime_type = EXCLUDED.mime_type, \
           filename = EXCLUDED.filename, total_bytes = EXCLUDED.total_bytes, asset_size = EXCLUDED.asset_size, \
           details = EXCLUDED.details",
    )
    .bind(rows.iter().map(|a| a.record_name.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|a| a.guid.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|a| a.mime_type.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|a| a.filename.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|a| a.total_bytes).collect::<Vec<_>>())
    .bind(sizes)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_failed(conn: &mut PgConnection, failed: &[FailedRecord]) -> Result<()> {
    let rows = zones::dedup_failed(failed);
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO failed_records (zone, record_name, reason, pending) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[]) \
         ON CONFLICT (zone, record_name) DO UPDATE SET reason = EXCLUDED.reason, pending = EXCLUDED.pending",
    )
    .bind(rows.iter().map(|f| f.zone.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|f| f.record_name.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|f| f.reason.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|f| f.pending).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies a change plan: deletions, then upserts, then drops the zone's now-obsolete
/// failed-record entries for every touched name.
async fn apply(conn: &mut PgConnection, zone: &str, plan: &Plan<'_>) -> Result<()> {
    if !plan.deleted.is_empty() {
        for stmt in [
            crate::revisions::PG_NOTE_DELETED,
            "DELETE FROM chat_records WHERE record_name = ANY($1)",
            "DELETE FROM messages WHERE record_name = ANY($1)",
            "DELETE FROM attachments WHERE record_name = ANY($1)",
        ] {
            sqlx::query(stmt).bind(&plan.deleted).execute(&mut *conn).await?;
        }
    }
    upsert_chats(conn, &plan.chats).await?;
    upsert_messages(conn, &plan.messages).await?;
    upsert_attachments(conn, &plan.attachments).await?;
    if !plan.touched.is_empty() {
        sqlx::query("DELETE FROM failed_records WHERE zone = $1 AND record_name = ANY($2)").bind(zone).bind(&plan.touched).execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait]
impl Db for PostgresStore {
    type Row = PgRow;
    const NOW: &'static str = "now()";

    async fn read_rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<PgRow>> {
        Ok(db::bind(sqlx::query(sql), params).fetch_all(&self.pool).await?)
    }

    async fn read_row(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<PgRow>> {
        Ok(db::bind(sqlx::query(sql), params).fetch_optional(&self.pool).await?)
    }

    async fn write(&self, sql: &str, params: &[Param<'_>]) -> Result<()> {
        db::bind(sqlx::query(sql), params).execute(&self.pool).await?;
        Ok(())
    }

    async fn write_returning(&self, sql: &str, params: &[Param<'_>]) -> Result<PgRow> {
        Ok(db::bind(sqlx::query(sql), params).fetch_one(&self.pool).await?)
    }

    /// Pages are upserted straight into `messages`: nothing to settle before a read.
    async fn settle_messages(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl PageWriter for PostgresStore {
    async fn write_page(&self, page: &PageCommit) -> Result<()> {
        let plan = Plan::new(&page.changes);
        let mut tx = self.tx().await?;
        apply(&mut tx, &page.zone, &plan).await?;
        upsert_failed(&mut tx, &page.failed).await?;
        sqlx::query(&zones::commit_page(Self::NOW))
            .bind(page.zone.as_str())
            .bind(page.token.as_deref())
            .bind(page.stats.records)
            .bind(page.stats.status)
            .bind(page.stats.done)
            .bind(page.stats.has_token)
            .bind(page.stats.skipped)
            .execute(&mut *tx)
            .await?;
        crate::crash_point("mid-page-commit");
        tx.commit().await?;
        Ok(())
    }

    async fn write_recovered(&self, zone: &str, recovered: &[RecordChange], still_failed: &[FailedRecord]) -> Result<()> {
        let plan = Plan::new(recovered);
        let mut tx = self.tx().await?;
        apply(&mut tx, zone, &plan).await?;
        upsert_failed(&mut tx, still_failed).await?;
        tx.commit().await?;
        Ok(())
    }
}
