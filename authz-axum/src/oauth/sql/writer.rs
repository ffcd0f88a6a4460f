//! One SQLite connection on a thread of its own, with group commit: what the token service's
//! SQLite store runs its statements on.
//!
//! SQLite has one writer at a time. A pool of connections that all write queues them inside
//! SQLite's busy handler, which *sleeps* (1, 2, 5, 10 … ms) between tries, and every
//! statement through an async driver is a hand-off to a connection's worker thread and back.
//! Here every operation is one closure sent to the thread; the thread takes what has queued up
//! (at most [`MAX_BATCH`]), answers the reads outside any transaction (they see committed
//! state only), then runs the writes in **one** transaction — each inside its own savepoint, so
//! a failing operation undoes only its own statements — and commits once: one durable sync for
//! the whole batch (group commit). Nobody is answered before the commit that holds their
//! write: with `synchronous=FULL` an answered write survives a crash or power loss, as before.
//!
//! An operation that has not started within the store timeout of being queued — its caller
//! gives up at twice that (`crate::sql::bounded`) — is not run at all: one that starts has a
//! whole timeout of slack to commit, so a write reported as failed does not happen later (short
//! of a single sync stalling longer than the timeout).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use authz_core::keystore::StoreError;
use rusqlite::Connection;

/// At most this many operations share one transaction.
pub(crate) const MAX_BATCH: usize = 256;

/// Whether an operation reads only (answered at once, outside any transaction) or writes
/// (batched into the next commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// One queued operation, type-erased.
trait Task: Send {
    /// Runs the statements; `false` when the operation failed (its savepoint is rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: its own result, or `err` when the batch did not commit.
    fn finish(self: Box<Self>, err: Option<StoreError>);
}

struct Op<T, F> {
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
    /// When it was queued plus the store timeout: not started after this.
    deadline: Instant,
}

impl<T, F> Task for Op<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        if self.reply.is_closed() || Instant::now() >= self.deadline {
            // Too late (the queue was held up, say by another process's write lock), or the
            // caller is gone: a write reported as failed must not happen later.
            self.result = Some(Err(StoreError(
                "the store could not start this operation within its timeout".into(),
            )));
            return false;
        }
        let r = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(StoreError("a store operation panicked".into())));
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, err: Option<StoreError>) {
        let r = match (err, self.result) {
            (Some(e), _) => Err(e),
            (None, Some(r)) => r,
            (None, None) => Err(StoreError("not run".into())),
        };
        let _ = self.reply.send(r);
    }
}

struct Job {
    access: Access,
    task: Box<dyn Task>,
}

fn stopped() -> StoreError {
    StoreError("the SQLite store's connection thread has stopped".into())
}

pub(super) fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

/// The handle: cheap to clone; the threads end (closing their connections) when the last
/// handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    /// How long an operation may wait in the queue before it starts.
    timeout: Duration,
    jobs: mpsc::Sender<Job>,
    /// Where reads go: a second connection on a thread of its own (a file in WAL mode: reads
    /// go on while the writer waits for its sync), or the writer's queue.
    reads: mpsc::Sender<Job>,
}

fn start(conn: Connection, name: &str) -> Result<mpsc::Sender<Job>, StoreError> {
    let (jobs, queue) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || serve(&conn, &queue))
        .map_err(|e| StoreError(format!("cannot start the SQLite thread: {e}")))?;
    Ok(jobs)
}

impl Writer {
    /// Starts the thread that owns `conn` (every write, and the reads when there is no
    /// `reader`) and, with a `reader` connection on the same database, the thread that answers
    /// the reads.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub(crate) fn spawn(
        conn: Connection,
        reader: Option<Connection>,
        timeout: Duration,
        name: &str,
    ) -> Result<Self, StoreError> {
        let jobs = start(conn, name)?;
        let reads = match reader {
            Some(r) => start(r, &format!("{name}-reads"))?,
            None => jobs.clone(),
        };
        Ok(Self { timeout, jobs, reads })
    }

    /// Runs `f` on the connection: at once for a read, in the next group commit for a write
    /// (answered only once that commit is durable).
    pub(crate) async fn call<T, F>(&self, access: Access, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let task = Box::new(Op {
            f: Some(f),
            result: None,
            reply,
            deadline: Instant::now() + self.timeout,
        });
        let queue = match access {
            Access::Read => &self.reads,
            Access::Write => &self.jobs,
        };
        queue.send(Job { access, task }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The thread's loop: until every handle is gone.
fn serve(conn: &Connection, queue: &mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut writes: Vec<Box<dyn Task>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        for Job { access, mut task } in batch.drain(..) {
            match access {
                Access::Read => {
                    task.run(conn);
                    task.finish(None);
                }
                Access::Write => writes.push(task),
            }
        }
        if !writes.is_empty() {
            commit_group(conn, &mut writes);
        }
    }
}

/// Runs `writes` in one transaction, each in a savepoint, commits once, answers everyone.
fn commit_group(conn: &Connection, writes: &mut Vec<Box<dyn Task>>) {
    // IMMEDIATE: take the write lock now (waiting up to the busy timeout for another process,
    // such as the CLI), so no statement inside can fail for want of it.
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        for t in writes.drain(..) {
            t.finish(Some(e.clone()));
        }
        return;
    }
    let mut broken = None;
    for t in writes.iter_mut() {
        if let Err(e) = exec(conn, "SAVEPOINT op") {
            broken = Some(e);
            break;
        }
        let ok = t.run(conn);
        let end = if ok {
            exec(conn, "RELEASE op")
        } else {
            exec(conn, "ROLLBACK TO op").and_then(|()| exec(conn, "RELEASE op"))
        };
        if let Err(e) = end {
            broken = Some(e);
            break;
        }
    }
    let outcome = match broken {
        None => exec(conn, "COMMIT"),
        Some(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            for t in writes.drain(..) {
                t.finish(None);
            }
        }
        Err(e) => {
            // Nothing of the batch is kept; every caller is told.
            let _ = exec(conn, "ROLLBACK");
            if !conn.is_autocommit() {
                // Still inside the transaction: every later BEGIN would fail. Once more, and
                // say so if that fails too (the store then answers 503 until restarted).
                if let Err(again) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %again, "SQLite token store: cannot roll back a failed group commit");
                }
            }
            for t in writes.drain(..) {
                t.finish(Some(e.clone()));
            }
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Writer {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        Writer::spawn(conn, None, Duration::from_secs(10), "test-writer").unwrap()
    }

    fn insert(k: &'static str, v: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send {
        move |c| {
            c.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", rusqlite::params![k, v])
                .map(|_| ())
                .map_err(sql_err)
        }
    }

    fn count(c: &Connection) -> Result<i64, StoreError> {
        c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .map_err(sql_err)
    }

    #[tokio::test]
    async fn a_failing_write_undoes_only_itself() {
        let w = writer();
        // Queued together, so they share a batch: the duplicate fails, the others commit.
        let (a, b, c) = tokio::join!(
            w.call(Access::Write, insert("a", 1)),
            w.call(Access::Write, move |c: &Connection| {
                insert("b", 2)(c)?;
                insert("a", 3)(c) // duplicate key: this operation fails after writing "b"
            }),
            w.call(Access::Write, insert("c", 4)),
        );
        assert!(a.is_ok() && c.is_ok());
        assert!(b.is_err());
        assert_eq!(
            w.call(Access::Read, count).await.unwrap(),
            2,
            "b's first insert undone"
        );
    }

    #[tokio::test]
    async fn many_concurrent_writes_all_commit() {
        let w = writer();
        let calls = (0..1000).map(|i| {
            let w = w.clone();
            tokio::spawn(async move {
                w.call(Access::Write, move |c: &Connection| {
                    c.execute(
                        "INSERT INTO t (k, v) VALUES (?1, ?2)",
                        rusqlite::params![format!("k{i}"), i],
                    )
                    .map(|_| ())
                    .map_err(sql_err)
                })
                .await
            })
        });
        for r in futures_join(calls).await {
            r.unwrap().unwrap();
        }
        assert_eq!(w.call(Access::Read, count).await.unwrap(), 1000);
    }

    #[tokio::test]
    async fn an_abandoned_write_is_not_run() {
        let w = writer();
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<(), StoreError>>();
        drop(answer);
        let task = Box::new(Op {
            f: Some(insert("gone", 1)),
            result: None,
            reply,
            deadline: Instant::now() + Duration::from_secs(10),
        });
        w.jobs
            .send(Job {
                access: Access::Write,
                task,
            })
            .unwrap();
        // A write queued after it runs after it (same batch or a later one) and sees nothing.
        assert_eq!(w.call(Access::Write, count).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_operation_not_started_within_the_timeout_is_not_run() {
        let dir = std::env::temp_dir().join(format!("authz-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.db");
        let _ = std::fs::remove_file(&path);
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        // No time at all to start: refused, and nothing reaches the file.
        let late = Writer::spawn(Connection::open(&path).unwrap(), None, Duration::ZERO, "late").unwrap();
        assert!(late.call(Access::Write, insert("late", 1)).await.is_err());
        assert_eq!(count(&setup).unwrap(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_panicking_operation_is_an_error_and_the_thread_lives_on() {
        let w = writer();
        let r = w
            .call(Access::Write, |_c: &Connection| -> Result<(), StoreError> {
                panic!("boom")
            })
            .await;
        assert!(r.is_err());
        w.call(Access::Write, insert("after", 1)).await.unwrap();
        assert_eq!(w.call(Access::Read, count).await.unwrap(), 1);
    }

    async fn futures_join<T>(
        handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
    ) -> Vec<Result<T, tokio::task::JoinError>> {
        let mut out = Vec::new();
        for h in handles.collect::<Vec<_>>() {
            out.push(h.await);
        }
        out
    }
}
