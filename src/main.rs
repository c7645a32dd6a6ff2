//! The `faxmta` command: everything is in the library (src/lib.rs), so
//! that the fuzz targets in fuzz/ can reach the parsers.

fn main() -> std::process::ExitCode {
    faxmta::main()
}
