//! Links the C libraries behind the fax line: spandsp (the software fax
//! modem, T.30/T.4) and libtiff (TIFF Class F files; spandsp needs it
//! too). Both come from Debian's libspandsp-dev and libtiff-dev, which
//! `scripts/serve` and `scripts/test` install when missing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A build without the line (feature `line`) links neither.
    if std::env::var_os("CARGO_FEATURE_LINE").is_none() {
        return;
    }
    // libtiff 4.5: per-handle error handlers (TIFFOpenOptions), which keep
    // its messages out of stderr and in our errors.
    for (lib, version) in [("spandsp", "0.0.6"), ("libtiff-4", "4.5")] {
        if let Err(e) = pkg_config::Config::new()
            .atleast_version(version)
            .probe(lib)
        {
            println!(
                "cargo:warning=faxmta: {lib} not found ({e}); install libspandsp-dev and \
                 libtiff-dev (scripts/serve and scripts/test do it)"
            );
            std::process::exit(1);
        }
    }
}
