//! The `hookpanel` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand};
use hookpanel::crypto;
use hookpanel::dispatch::{self, DeliveryConfig};
use hookpanel::server::{self, HttpLimits, SecretsAtRest, ServiceConfig};
use hookpanel::store::{StoreOptions, transfer};
use hookpanel::validate::HttpPolicy;
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    version,
    about = "Operate webhooks: the delivery service and its admin API."
)]
struct Cli {
    /// Without a subcommand: open the desktop panel, with its own embedded service.
    #[command(subcommand)]
    command: Option<Command>,

    /// Where the panel keeps secrets: the platform's keychain, or (Linux, for headless
    /// machines without a Secret Service) the kernel keyring, which forgets everything at
    /// reboot.
    #[cfg(feature = "panel")]
    #[arg(long, env = "HOOKPANEL_KEYCHAIN", value_enum, default_value_t = KeychainChoice::Native)]
    keychain: KeychainChoice,
}

#[cfg(feature = "panel")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum KeychainChoice {
    Native,
    Kernel,
}

#[derive(Subcommand)]
enum Command {
    /// Run the admin API headless.
    Serve(Box<ServeArgs>),
    /// Print a fresh secrets-encryption key for HOOKPANEL_ENCRYPTION_KEY.
    Keygen,
    /// Copy a SQLite database into an empty PostgreSQL database, all or nothing. Stop the
    /// service on the SQLite file first; use the same encryption key on the target.
    Migrate(MigrateArgs),
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// The SQLite database to copy: sqlite://PATH.
    #[arg(long)]
    from: String,

    /// The empty PostgreSQL database to copy into: postgres://USER:PASSWORD@HOST:PORT/DB.
    #[arg(long)]
    to: String,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "HOOKPANEL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Database URL: sqlite://PATH (created if missing; one process per file), or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE for replicas that share one database
    /// (TLS with ?sslmode=require).
    #[arg(long, env = "HOOKPANEL_DB", default_value = "sqlite://hookpanel.db")]
    db: String,

    /// Most connections to PostgreSQL per replica.
    #[arg(long, env = "HOOKPANEL_DB_MAX_CONNECTIONS", default_value_t = hookpanel::store::DEFAULT_MAX_CONNECTIONS)]
    db_max_connections: u32,

    /// How long a claimed delivery stays with the replica that claimed it: a replica that
    /// dies holds its deliveries this long, then any replica takes them.
    #[arg(long, env = "HOOKPANEL_LEASE", default_value = "60s", value_parser = humantime::parse_duration)]
    lease: Duration,

    /// The admin key callers must present. Unset: one is generated on first start,
    /// printed once, and only its hash is kept in the database.
    #[arg(long, env = "HOOKPANEL_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,

    /// Key that encrypts signing secrets at rest: 32 bytes, base64 (`hookpanel keygen`).
    #[arg(long, env = "HOOKPANEL_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,

    /// To roll the encryption key: the key used until now, with the new one as
    /// HOOKPANEL_ENCRYPTION_KEY. Secrets it sealed are re-sealed with the new key in the
    /// background; once none is left (GET /v1/admin/encryption-key), start without it.
    #[arg(
        long,
        env = "HOOKPANEL_PREVIOUS_ENCRYPTION_KEY",
        hide_env_values = true,
        requires = "encryption_key"
    )]
    previous_encryption_key: Option<String>,

    /// Secrets re-sealed per transaction while the encryption key rolls over.
    #[arg(long, env = "HOOKPANEL_RESEAL_BATCH", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    reseal_batch: u32,

    /// A pause between two re-seal transactions, to leave a busy database room.
    #[arg(long, env = "HOOKPANEL_RESEAL_PAUSE", default_value = "0s", value_parser = humantime::parse_duration)]
    reseal_pause: Duration,

    /// Store signing secrets unencrypted. Anyone with a copy of the database can then
    /// sign as you. For throwaway setups only.
    #[arg(long, env = "HOOKPANEL_INSECURE_PLAINTEXT_SECRETS", value_parser = BoolishValueParser::new())]
    insecure_plaintext_secrets: bool,

    /// Allow plain-http webhook URLs to any host (by default only to localhost).
    #[arg(long, env = "HOOKPANEL_ALLOW_HTTP", value_parser = BoolishValueParser::new())]
    allow_http: bool,

    /// A JSON event-type catalog to use instead of the built-in one.
    #[arg(long, env = "HOOKPANEL_EVENT_TYPES")]
    event_types: Option<PathBuf>,

    /// One entry per attempt of a delivery: the first at once (0s), each later one that
    /// long after the previous; after the last, it fails.
    #[arg(long, env = "HOOKPANEL_RETRY_SCHEDULE", default_value = dispatch::DEFAULT_RETRY_SCHEDULE,
          value_parser = dispatch::parse_schedule)]
    retry_schedule: Schedule,

    /// Allow deliveries to loopback and private networks (refused by default against SSRF;
    /// link-local, multicast, reserved and cloud metadata addresses stay refused).
    #[arg(long, env = "HOOKPANEL_ALLOW_PRIVATE_DESTINATIONS", value_parser = BoolishValueParser::new())]
    allow_private_destinations: bool,

    /// Deactivate a webhook whose deliveries have all failed for this long.
    #[arg(long, env = "HOOKPANEL_AUTO_DISABLE_AFTER", default_value = "5days",
          value_parser = humantime::parse_duration)]
    auto_disable_after: Duration,

    /// Delivery attempts in flight at once.
    #[arg(long, env = "HOOKPANEL_DELIVERY_CONCURRENCY", default_value_t = dispatch::DEFAULT_CONCURRENCY)]
    delivery_concurrency: usize,

    /// Requests in flight at once to any one webhook (its share of the attempts).
    #[arg(long, env = "HOOKPANEL_WEBHOOK_CONCURRENCY", default_value_t = dispatch::DEFAULT_PER_WEBHOOK_CONCURRENCY)]
    webhook_concurrency: usize,

    /// Client connections served at once; more wait to be accepted. Headers must arrive
    /// within 10 s and a body within 30 s whatever this is.
    #[arg(long, env = "HOOKPANEL_MAX_CONNECTIONS", default_value_t = server::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,

    /// Wrong or missing admin keys one client address may send at once before it gets 429
    /// with Retry-After (then 10 a second). A valid key is never limited.
    #[arg(long, env = "HOOKPANEL_WRONG_KEY_BURST", default_value_t = server::FAILED_KEYS_BURST,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    wrong_key_burst: u32,

    /// Finished deliveries (succeeded or failed) older than this are deleted, with their
    /// attempts; pending and retrying ones never are. `0` keeps everything.
    #[arg(long, env = "HOOKPANEL_RETENTION", default_value = "30days", value_parser = parse_retention)]
    retention: Retention,

    /// Audit log entries older than this are deleted. `0` keeps them all.
    #[arg(long, env = "HOOKPANEL_AUDIT_RETENTION", default_value = "365days", value_parser = parse_retention)]
    audit_retention: Retention,
}

/// `--retention`: a duration, or `0` for none.
#[derive(Clone, Copy, Debug)]
struct Retention(Option<Duration>);

fn parse_retention(text: &str) -> Result<Retention, String> {
    if text.trim() == "0" {
        return Ok(Retention(None));
    }
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Ok(Retention(None)),
        Ok(duration) => Ok(Retention(Some(duration))),
        Err(err) => Err(format!(
            "{err} (a duration such as 30days or 12h, or 0 to keep everything)"
        )),
    }
}

/// clap needs a named type for a parsed list.
type Schedule = Vec<Duration>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        #[cfg(feature = "panel")]
        None => {
            init_logging();
            kernel_keychain(cli.keychain).and_then(hookpanel::ui::run)
        }
        #[cfg(not(feature = "panel"))]
        None => Err(anyhow::anyhow!(
            "this build has no desktop panel (built without the `panel` feature); \
             run `hookpanel serve`"
        )),
        Some(Command::Keygen) => crypto::generate_encryption_key()
            .map(|key| println!("{}", key.as_str()))
            .map_err(anyhow::Error::from),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Migrate(args)) => migrate(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();

    let secrets_at_rest = match (args.encryption_key, args.insecure_plaintext_secrets) {
        (Some(key), _) => SecretsAtRest::Encrypted {
            key: Zeroizing::new(key),
            previous: args.previous_encryption_key.map(Zeroizing::new),
        },
        (None, true) => {
            eprintln!(
                "\n  WARNING: --insecure-plaintext-secrets: webhook signing secrets are stored UNENCRYPTED.\n  Anyone with a copy of {} can sign webhooks as you.\n  Set HOOKPANEL_ENCRYPTION_KEY (`hookpanel keygen`) for anything that matters.\n",
                args.db
            );
            tracing::warn!("signing secrets are stored unencrypted (--insecure-plaintext-secrets)");
            SecretsAtRest::InsecurePlaintext
        }
        (None, false) => anyhow::bail!(
            "HOOKPANEL_ENCRYPTION_KEY is not set. Signing secrets are encrypted at rest with it:\n  export HOOKPANEL_ENCRYPTION_KEY=$(hookpanel keygen)\nand keep it somewhere safe (without it the stored secrets cannot be used).\nFor a throwaway setup, --insecure-plaintext-secrets stores them unencrypted."
        ),
    };
    let config = ServiceConfig {
        listen: args.listen,
        database_url: args.db,
        database: StoreOptions {
            max_connections: args.db_max_connections,
        },
        admin_key: args.admin_key.map(Zeroizing::new),
        secrets_at_rest,
        http_policy: if args.allow_http {
            HttpPolicy::Anywhere
        } else {
            HttpPolicy::LoopbackOnly
        },
        event_types_path: args.event_types,
        delivery: DeliveryConfig {
            retry_schedule: args.retry_schedule,
            allow_private_destinations: args.allow_private_destinations,
            auto_disable_after: args.auto_disable_after,
            concurrency: args.delivery_concurrency,
            per_webhook_concurrency: args.webhook_concurrency,
            lease: args.lease,
            ..DeliveryConfig::default()
        },
        inbox: false,
        loopback_host_only: false,
        wrong_key_burst: args.wrong_key_burst,
        retention: args.retention.0,
        audit_retention: args.audit_retention.0,
        reseal: server::ResealPace {
            batch: args.reseal_batch,
            pause: args.reseal_pause,
        },
        http: HttpLimits {
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            ..HttpLimits::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut service = server::start(config).await?;
        if let Some(key) = service.take_generated_admin_key() {
            // Printed to the terminal once, never logged: only its hash is stored.
            println!(
                "Generated an admin key (shown once; only its hash is stored):\n\n  {}\n",
                key.as_str()
            );
        }
        println!("Hookpanel admin API listening on {}", service.base_url());
        service
            .run_until(async {
                shutdown_signal().await;
                tracing::info!("shutting down");
            })
            .await
            .context("serving the admin API")
    })
}

fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>17} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
        )
        .context("the progress bar's template")?
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let counts = runtime.block_on(transfer::sqlite_to_postgres(
        &args.from,
        &args.to,
        &StoreOptions::default(),
        &|progress| {
            bar.set_length(progress.total);
            bar.set_position(progress.copied);
            bar.set_message(progress.table.to_owned());
        },
    ));
    bar.finish_and_clear();
    let counts = counts?;
    println!(
        "Copied in {:.1} s, and checked against the source:",
        started.elapsed().as_secs_f64()
    );
    for count in &counts {
        println!("  {:<18} {:>10} rows", count.table, count.target);
    }
    println!(
        "Start `hookpanel serve --db <the PostgreSQL URL>` with the same encryption key and \
         admin key."
    );
    Ok(())
}

/// Ctrl-C, or SIGTERM where there is one (systemd, containers).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The kernel keyring when asked for; `None` lets the panel open the platform keychain.
#[cfg(feature = "panel")]
fn kernel_keychain(
    choice: KeychainChoice,
) -> anyhow::Result<Option<Result<hookpanel::keychain::Keychain, hookpanel::keychain::KeychainError>>>
{
    match choice {
        KeychainChoice::Native => Ok(None),
        #[cfg(target_os = "linux")]
        KeychainChoice::Kernel => Ok(Some(hookpanel::keychain::Keychain::kernel())),
        #[cfg(not(target_os = "linux"))]
        KeychainChoice::Kernel => anyhow::bail!("the kernel keyring exists on Linux only"),
    }
}
