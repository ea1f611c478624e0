//! `flowrun serve`: the long-running service. Wires the service file, the journal, the
//! simulator and the HTTP listener to [`flowrun::service`], which does the work.

use super::exit;
use flowrun::World;
use flowrun::flow::Source;
use flowrun::service::model::WebhookAuth;
use flowrun::service::runtime::Runtime;
use flowrun::service::webhook::{Auth, Hook, router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The service file (`kind: service`).
    service: PathBuf,
    /// Journal every run (`sqlite:PATH`): an event's id is its run id, so a redelivered event
    /// does not run twice, and runs cut short by a stop can be resumed.
    #[arg(long, env = "FLOWRUN_JOURNAL", value_name = "URL")]
    journal: Option<String>,
    /// Where the webhook and the probes listen.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// The most runs in flight at once; an event beyond it is answered 503 (send it again).
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_runs: usize,
    /// On SIGTERM or Ctrl-C: how long running flows may take to finish; the rest stay in the
    /// journal, resumable.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    grace: Duration,
    /// Send the flows' requests to the built-in Interaction Service simulator.
    #[arg(long)]
    sim: bool,
}

pub fn run(args: Args) -> u8 {
    match serve(args) {
        Ok(code) | Err(code) => code,
    }
}

fn serve(args: Args) -> Result<u8, u8> {
    let source = Source::read(&args.service).map_err(|e| {
        super::error(format_args!("cannot read {}: {e}", args.service.display()));
        exit::USAGE
    })?;
    let service = flowrun::service::load(&source).map_err(|problems| {
        for d in &problems {
            anstream::eprintln!("{}", d.render_styled(&source));
        }
        exit::INVALID
    })?;
    let mut world = World::system();
    let _simulator = match args.sim {
        true => Some(super::sim::attach(&mut world, None)?),
        false => None,
    };
    let journal = args
        .journal
        .as_deref()
        .map(|url| super::runs::open_url(url, true))
        .transpose()?;
    let transport = flowrun::HttpTransport::new(flowrun::http::DEFAULT_MAX_BODY).map_err(|e| {
        super::error(format_args!("{e}"));
        exit::USAGE
    })?;
    let dir = args.service.parent().map(PathBuf::from).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            super::error(format_args!("{e}"));
            exit::USAGE
        })?;
    runtime.block_on(async move {
        let service_runtime = Runtime::new(&service, &dir, world.clone(), Arc::new(transport), journal, args.max_runs)
            .map_err(|e| {
                super::error(format_args!("{}", world.secrets.redact(&e.to_string())));
                exit::INVALID
            })?;
        let service_runtime = Arc::new(service_runtime);
        let hook = match &service.sources.webhook {
            None => None,
            Some(w) => Some(Hook {
                path: w.path.clone(),
                auth: render_auth(&w.auth, &world)?,
            }),
        };
        if service.sources.pubsub.is_some() {
            super::warning(format_args!(
                "sources.pubsub: the Pub/Sub subscriber is not built yet; only the webhook and the probes are served"
            ));
        }
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
            super::error(format_args!("cannot listen on {}: {e}", args.listen));
            exit::USAGE
        })?;
        let addr = listener.local_addr().map_err(|_| exit::USAGE)?;
        println!("{}: serving on http://{addr}", service.name);
        if let Some(hook) = &hook {
            println!("  webhook: POST http://{addr}{}", hook.path);
        }
        let app = router(service_runtime.clone(), hook, args.max_runs);
        let grace = args.grace;
        let stopped = async move {
            let why = flowrun::signals::stop_requested().await;
            println!("{why}: taking no more events; waiting up to {} for running flows", flowrun::engine::short_duration(grace));
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            super::error(format_args!("{e}"));
            return Err(exit::USAGE);
        }
        if !service_runtime.drain(args.max_runs, args.grace).await {
            // Left in the journal as running: `flowrun runs resume` goes on with them.
            service_runtime.stop.store(true, Ordering::Relaxed);
            println!(
                "{} run(s) still in flight after the grace period: left to resume",
                service_runtime.in_flight(args.max_runs)
            );
        }
        Ok(exit::OK)
    })
}

/// The webhook's secret, rendered once (`secret()` values are masked from then on).
fn render_auth(auth: &WebhookAuth, world: &World) -> Result<Auth, u8> {
    let text = match auth {
        WebhookAuth::Bearer(t) | WebhookAuth::Hmac(t) => t,
    };
    let mut templates = flowrun::expr::templates::Templates::new(world);
    let value = templates
        .template(text, 0)
        .and_then(|id| templates.render(id, &flowrun::expr::context::Context::new(serde_json::json!({}))))
        .map_err(|e| {
            super::error(format_args!("sources.webhook.auth: {e}"));
            exit::INVALID
        })?;
    let secret = value.as_str().map_or_else(|| value.to_string(), str::to_string);
    world.secrets.add(&secret);
    Ok(match auth {
        WebhookAuth::Bearer(_) => Auth::Bearer(secret),
        WebhookAuth::Hmac(_) => Auth::Hmac(secret.into_bytes()),
    })
}
