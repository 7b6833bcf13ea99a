//! The `treeseal` binary: all behaviour lives in the library; see `treeseal --help`.

fn main() -> std::process::ExitCode {
    // A bug must not print a multi-line debug dump (even with RUST_BACKTRACE=1) nor let
    // the gate pass: one line, and a non-zero exit (the release build aborts).
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "treeseal: internal error: {}; refusing",
            treeseal::escape::escape(msg.as_bytes())
        );
    }));
    treeseal::cli::main()
}
