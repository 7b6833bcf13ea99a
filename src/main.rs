//! The `treeseal` binary: all behaviour lives in the library; see `treeseal --help`.

fn main() -> std::process::ExitCode {
    treeseal::commands::main()
}
