//! Shutdown on SIGTERM or SIGINT, shared by the runtime's and the operator's binaries.

use std::future::Future;

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed by this call, not when
/// the future is first polled, so a signal that arrives after the call is never missed (and
/// never kills the process with the default action).
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = signals else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
