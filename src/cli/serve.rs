//! `flowrun serve`: the long-running service. Wires the service file, the journal, the
//! simulator and the HTTP listener to [`flowrun::service`], which does the work.

use super::exit;
use flowrun::World;
use flowrun::flow::Source;
use flowrun::http::auth::{self, JwtBearer, JwtSettings};
use flowrun::service::Logger;
use flowrun::service::Runtime;
use flowrun::service::subscriber;
use flowrun::service::webhook::{Auth, Hook, router};
use flowrun::service::{PubSub, WebhookAuth};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Run against the built-in simulator: the flows' requests go to its Interaction Service
    /// and the Pub/Sub source subscribes to its event bus (`POST /sim/transfer` publishes a
    /// RoutingRequested event).
    #[arg(long)]
    sim: bool,
    /// How long a client may take to send a request (its head, then the whole of it) to the
    /// webhook or the probes; a slower one is cut off (`408` once its head came).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    read_timeout: Duration,
    /// How log lines are written: `lines` (text) or `json` (one object per line).
    #[arg(long, value_enum, default_value = "lines", value_name = "FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Lines,
    Json,
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
    let simulator = match args.sim {
        true => Some(super::sim::attach(&mut world, None)?),
        false => None,
    };
    let journal = args
        .journal
        .as_deref()
        .map(|url| super::runs::open_url(url, true))
        .transpose()?;
    let transport = flowrun::HttpTransport::new(flowrun::http::DEFAULT_MAX_BODY);
    let dir = args.service.parent().map(PathBuf::from).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            super::error(format_args!("{e}"));
            exit::USAGE
        })?;
    let transport: Arc<dyn flowrun::http::Transport> = Arc::new(transport);
    runtime.block_on(async move {
        let log = Logger::new(args.log_format == LogFormat::Json, world.secrets.clone());
        // The service file's own settings, then its flows: every problem is told at once.
        let settings = Settings::new(&world, args.sim);
        let pubsub = service
            .sources
            .pubsub
            .as_ref()
            .and_then(|p| pubsub_settings(p, &settings, transport.clone()));
        let hook = service.sources.webhook.as_ref().map(|w| Hook {
            path: w.path.clone(),
            auth: render_auth(&w.auth, &settings),
        });
        let service_runtime =
            Runtime::new(&service, &dir, world.clone(), transport.clone(), journal.clone(), args.max_runs, log);
        if let Err(e) = &service_runtime {
            for problem in &e.0 {
                settings.problem(problem.clone());
            }
        }
        settings.told()?;
        let Ok(service_runtime) = service_runtime else { return Err(exit::INVALID) };
        let service_runtime = Arc::new(service_runtime);
        if service.on.iter().any(|h| h.fill.is_some()) && journal.is_none() {
            super::warning(format_args!(
                "`fill` reads earlier runs from the journal: without --journal, nothing is filled"
            ));
        }
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
            super::error(format_args!("cannot listen on {}: {e}", args.listen));
            exit::USAGE
        })?;
        let addr = listener.local_addr().map_err(|_| exit::USAGE)?;
        // With JSON logs, every line on stdout is a JSON object.
        let json = args.log_format == LogFormat::Json;
        let log = service_runtime.log.clone();
        let say = move |text: String, message: &str, fields: &[(&str, serde_json::Value)]| match json {
            true => log.info(message, fields),
            false => println!("{text}"),
        };
        let url = format!("http://{addr}");
        say(format!("{}: serving on {url}", service.name), "serving", &[("service", service.name.clone().into()), ("url", url.clone().into())]);
        if let Some(hook) = &hook {
            let at = format!("{url}{}", hook.path);
            say(format!("  webhook: POST {at}"), "webhook", &[("url", at.clone().into())]);
        }
        if let Some(p) = &pubsub {
            say(format!("  pubsub: {} at {}", p.topic, p.url), "pubsub", &[("topic", p.topic.clone().into()), ("url", p.url.clone().into())]);
        }
        if let Some(sim) = &simulator {
            let base = sim.base_url();
            say(
                format!("  simulator: {base} (an agent clicks a transfer target: curl -X POST {base}/sim/transfer -d '{{\"target\":\"queue\"}}')"),
                "simulator",
                &[("url", base.clone().into())],
            );
        }
        // With a shared journal, runs are leased: any instance claims those whose lease ran out.
        let resumed = match service_runtime.shared_journal() {
            Some(_) => 0,
            None => service_runtime.resume_unfinished(),
        };
        if resumed > 0 {
            say(format!("  resumed {resumed} unfinished run(s) from the journal"), "resumed", &[("runs", resumed.into())]);
        }
        let stop_source = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(tokio::sync::Notify::new());
        // Every instance sharing a journal runs queued runs, the leader's and the others' alike.
        let worker = tokio::spawn(service_runtime.clone().work_queue(stop_source.clone()));
        let leases = tokio::spawn(service_runtime.clone().keep_leases());
        let subscriber = pubsub.map(|settings| {
            tokio::spawn(subscriber::run(
                service_runtime.clone(),
                settings,
                stop_source.clone(),
                stopped.clone(),
            ))
        });
        let app = router(service_runtime.clone(), hook, args.max_runs);
        let grace = args.grace;
        let (stop_flag, wake, say_stop) = (stop_source.clone(), stopped.clone(), say.clone());
        let shutdown = async move {
            let why = flowrun::signals::stop_requested().await;
            stop_flag.store(true, Ordering::Relaxed);
            wake.notify_one();
            let wait = flowrun::engine::short_duration(grace);
            say_stop(
                format!("{why}: taking no more events; waiting up to {wait} for running flows"),
                "stopping",
                &[("why", why.to_string().into()), ("grace", wait.into())],
            );
        };
        flowrun::service::serve(listener, app, args.read_timeout, shutdown).await;
        if let Some(task) = subscriber {
            let _ = task.await;
        }
        let _ = worker.await;
        if !service_runtime.drain(args.max_runs, args.grace).await {
            // Left in the journal as running: `flowrun runs resume` goes on with them.
            service_runtime.stop.store(true, Ordering::Relaxed);
            let left = service_runtime.in_flight(args.max_runs);
            say(
                format!("{left} run(s) still in flight after the grace period: left to resume"),
                "left to resume",
                &[("runs", left.into())],
            );
        }
        service_runtime.flush();
        // Runs left in flight keep their lease no longer: another instance claims them.
        leases.abort();
        Ok(exit::OK)
    })
}

/// The service file's own settings, rendered once when the service starts. Every setting is
/// rendered, and every problem kept, so that all of what is missing is told at once.
struct Settings<'w> {
    world: &'w World,
    problems: std::cell::RefCell<Vec<String>>,
    /// Running with `--sim` (the hint then does not suggest it).
    sim: bool,
}

impl<'w> Settings<'w> {
    fn new(world: &'w World, sim: bool) -> Self {
        Settings {
            world,
            problems: Default::default(),
            sim,
        }
    }

    /// `text` rendered; on a problem, it is kept and the value is empty.
    fn render(&self, what: &str, text: &str) -> String {
        let mut templates = flowrun::expr::Templates::new(self.world);
        let value = templates
            .template(text, 0)
            .and_then(|id| templates.render(id, &flowrun::expr::Context::new(serde_json::json!({}))));
        match value {
            Ok(v) => v.as_str().map_or_else(|| v.to_string(), str::to_string),
            Err(e) => {
                self.problem(format!("{what}: {e}"));
                String::new()
            }
        }
    }

    fn problem(&self, text: String) {
        let text = self.world.secrets.redact(&text).into_owned();
        self.problems.borrow_mut().push(text);
    }

    /// Every problem kept, each as an error, with one hint; the exit code when there was any.
    fn told(&self) -> Result<(), u8> {
        let problems = self.problems.borrow();
        if problems.is_empty() {
            return Ok(());
        }
        for p in problems.iter() {
            super::error(format_args!("{p}"));
        }
        match self.sim {
            true => eprintln!("  = hint: set what is missing in the environment"),
            false => {
                eprintln!("  = hint: set what is missing in the environment, or try the service with --sim")
            }
        }
        Err(exit::INVALID)
    }
}

/// The Pub/Sub source's settings, rendered; its token from `access_token` or `jwt_bearer`.
fn pubsub_settings(
    p: &PubSub,
    settings: &Settings,
    transport: Arc<dyn flowrun::http::Transport>,
) -> Option<subscriber::Settings> {
    let render = |name: &str, text: &str| settings.render(&format!("sources.pubsub.{name}"), text);
    let field =
        |name: &str, text: &Option<String>| text.as_deref().map(|t| render(name, t)).unwrap_or_default();
    let url = match &p.url {
        Some(u) => render("url", u),
        None => DEFAULT_PUBSUB_URL.to_string(),
    };
    let topic = render("topic", &p.topic);
    let instance_url = field("instance_url", &p.instance_url);
    let org_id = field("org_id", &p.org_id);
    let auth = match (&p.access_token, &p.jwt_bearer) {
        (_, Some(jwt)) => {
            let get = |name: &str, text: &str| render(&format!("jwt_bearer.{name}"), text);
            let jwt = JwtSettings {
                token_url: get("token_url", &jwt.token_url),
                client_id: get("client_id", &jwt.client_id),
                username: get("username", &jwt.username),
                audience: get("audience", &jwt.audience),
                private_key: get("private_key", &jwt.private_key),
                lifetime: jwt.lifetime.unwrap_or(Duration::from_secs(180)),
            };
            if !settings.problems.borrow().is_empty() {
                return None;
            }
            match JwtBearer::new(
                jwt,
                transport,
                settings.world.secrets.clone(),
                Duration::from_secs(10),
            ) {
                Ok(bearer) => auth::Auth::Jwt(Arc::new(bearer)),
                Err(e) => {
                    settings.problem(format!("sources.pubsub.jwt_bearer: {e}"));
                    return None;
                }
            }
        }
        (Some(token), None) => {
            let token = render("access_token", token);
            settings.world.secrets.add(&token);
            auth::Auth::Bearer(token)
        }
        (None, None) => {
            settings.problem("sources.pubsub needs `access_token` or `jwt_bearer`".into());
            return None;
        }
    };
    Some(subscriber::Settings {
        url,
        topic,
        instance_url,
        org_id,
        auth,
        batch: subscriber::batch(p.batch),
        stall_after: p.stall_after.unwrap_or(subscriber::STALL_AFTER),
    })
}

/// Where the Pub/Sub API is when the service file does not say.
const DEFAULT_PUBSUB_URL: &str = "https://api.pubsub.salesforce.com:7443";

/// The webhook's secret, rendered once (`secret()` values are masked from then on).
fn render_auth(auth: &WebhookAuth, settings: &Settings) -> Auth {
    let text = match auth {
        WebhookAuth::Bearer(t) | WebhookAuth::Hmac(t) => t,
    };
    let secret = settings.render("sources.webhook.auth", text);
    settings.world.secrets.add(&secret);
    match auth {
        WebhookAuth::Bearer(_) => Auth::Bearer(secret),
        WebhookAuth::Hmac(_) => Auth::Hmac(secret.into_bytes()),
    }
}
