//! Runs end-to-end tests on both storage backends: SQLite in a temporary directory, and a
//! database of its own on a real PostgreSQL server, created for the test and dropped
//! after it.
//!
//! The server is `HOOKPANEL_TEST_POSTGRES` (an admin URL), by default the project
//! machines' `postgres://postgres@127.0.0.1:5432/postgres`; `.ci/run` starts a throwaway
//! one where none runs. When it cannot be reached, the PostgreSQL variants fail: they are
//! never skipped.

use std::future::Future;

use sqlx::Connection as _;

/// Where a test's service keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

impl Backend {
    /// The backend of the test running now: SQLite unless it runs inside
    /// [`Backend::run`].
    pub fn current() -> Self {
        BACKEND.try_with(|backend| *backend).unwrap_or(Self::Sqlite)
    }

    /// Runs `test` with services started on this backend.
    pub async fn run<T>(self, test: impl Future<Output = T>) -> T {
        BACKEND.scope(self, test).await
    }
}

/// A database for a `hookpanel serve` the test spawns itself, on the running test's
/// backend: the SQLite file `file` in `dir`, or a PostgreSQL database of its own, dropped
/// with the returned guard.
pub async fn spawned_database(
    dir: &std::path::Path,
    file: &str,
) -> (Option<PostgresDatabase>, String) {
    match Backend::current() {
        Backend::Sqlite => (None, format!("sqlite://{}", dir.join(file).display())),
        Backend::Postgres => {
            let database = PostgresDatabase::create().await;
            let url = database.url().to_owned();
            (Some(database), url)
        }
    }
}

/// The admin URL of the PostgreSQL server the tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("HOOKPANEL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of one test's own on the test server, dropped when this is.
#[derive(Debug)]
pub struct PostgresDatabase {
    name: String,
    url: String,
}

impl PostgresDatabase {
    pub async fn create() -> Self {
        let admin = postgres_admin_url();
        let name = format!("hookpanel_test_{}", ulid::Ulid::new()).to_lowercase();
        let mut connection = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|err| panic!("the test PostgreSQL server at {admin}: {err}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("test database created");
        let _ = connection.close().await;
        let (base, _) = admin
            .rsplit_once('/')
            .expect("the admin URL names a database");
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PostgresDatabase {
    /// Drops the database from a thread of its own: a test's runtime may be shutting
    /// down, and `Drop` cannot wait on it.
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut connection = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut connection)
                .await?;
                connection.close().await
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("dropping the test database {}: {err}", self.name);
        }
    }
}

/// Defines each test twice, `sqlite` and `postgres`, in a module named after it: the
/// same body, with every service it starts on that backend.
macro_rules! on_both_backends {
    ($($(#[$attr:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn test() $body

            $(#[$attr])*
            async fn sqlite() {
                $crate::backend::Backend::Sqlite.run(test()).await;
            }

            $(#[$attr])*
            async fn postgres() {
                $crate::backend::Backend::Postgres.run(test()).await;
            }
        }
    )*};
}

/// A connection of a test's own to a service's database, for checking what is stored
/// against what the API says.
pub enum RawConnection {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl RawConnection {
    /// Opens the database at `url` (a SQLite file read-only).
    pub async fn open(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            let connection = sqlx::SqliteConnection::connect(&format!("{url}?mode=ro"))
                .await
                .expect("the SQLite database opens");
            Self::Sqlite(connection)
        } else {
            let connection = sqlx::PgConnection::connect(url)
                .await
                .expect("the PostgreSQL database opens");
            Self::Postgres(connection)
        }
    }

    /// Every row `sql` returns; write it in SQL that both backends take.
    pub async fn rows<T>(&mut self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        let text = || sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Self::Sqlite(connection) => sqlx::query_as(text()).fetch_all(connection).await,
            Self::Postgres(connection) => sqlx::query_as(text()).fetch_all(connection).await,
        }
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }
}
