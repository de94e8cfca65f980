use std::sync::Arc;

use stats_service::config::{Config, HELP};
use stats_service::connections::{connection_cap, open_file_limit};
use stats_service::http::{serve, App};

fn main() {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return;
    }
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stats-service: invalid configuration:\n{e}\n\nhint: `stats-service --help` lists the variables");
            std::process::exit(1);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("stats-service: cannot start the runtime: {e}");
            std::process::exit(1);
        });
    rt.block_on(async move {
        let listener = match listen(cfg.listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("stats-service: cannot listen on {}: {e}\nhint: choose another PORT, or stop what uses it", cfg.listen);
                std::process::exit(1);
            }
        };
        eprintln!("stats-service: {cfg}");
        let cap = connection_cap(cfg.max_connections, open_file_limit(), cfg.mode);
        if let Some(why) = &cap.lowered_because {
            eprintln!("stats-service: {why}");
        }
        let app = Arc::new(App::new(&cfg));
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                }
                _ => std::future::pending::<()>().await,
            }
            eprintln!("stats-service: stopping: no new connections, draining requests in flight");
        };
        serve(listener, app, shutdown, cfg.drain_timeout, cap.limit).await;
    });
}

/// A page-load wave opens hundreds of connections at once: the standard library's (and mio's) backlog of 128 drops
/// SYNs beyond it, and each dropped one costs its viewer a one-second retransmit. The kernel caps this at
/// net.core.somaxconn.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
