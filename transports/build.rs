//! Links the C libraries behind the fax line: spandsp (the software fax
//! modem, T.30/T.4) and libtiff (TIFF Class F files; spandsp needs it
//! too). Both come from Debian's libspandsp-dev and libtiff-dev, which
//! `scripts/serve` and `scripts/test` install when missing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for lib in ["spandsp", "libtiff-4"] {
        if let Err(e) = pkg_config::Config::new().probe(lib) {
            println!(
                "cargo:warning=faxmta: {lib} not found ({e}); install libspandsp-dev and \
                 libtiff-dev (scripts/serve and scripts/test do it)"
            );
            std::process::exit(1);
        }
    }
}
