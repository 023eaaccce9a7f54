//! The jobattach engine component. This file only binds the WIT exports to the domain modules;
//! the rules live in those modules, which also compile natively so `cargo test` can run them.

pub mod error;
pub mod glob;
pub mod hash;
pub mod json;
pub mod manifest;
pub mod relpath;
pub mod roots;
pub mod snapshot;

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        world: "engine",
        path: "../wit",
        with: {
            "wasi:filesystem/types@0.2.12": wasip2::filesystem::types,
            "wasi:filesystem/preopens@0.2.12": wasip2::filesystem::preopens,
            "wasi:io/error@0.2.12": wasip2::io::error,
            "wasi:io/poll@0.2.12": wasip2::io::poll,
            "wasi:io/streams@0.2.12": wasip2::io::streams,
            "wasi:clocks/wall-clock@0.2.12": wasip2::clocks::wall_clock,
        },
    });

    use exports::jobattach::engine::{hashing, info, manifest, snapshot, types};
    use jobattach::engine::host_files;

    use crate::error::{Error, ErrorKind};

    struct Engine;

    impl info::Guest for Engine {
        fn version() -> String {
            env!("CARGO_PKG_VERSION").to_string()
        }
    }

    impl hashing::Guest for Engine {
        fn hash_file(root: String, path: String) -> Result<String, types::Error> {
            crate::roots::hash_file(&root, &path).map_err(Into::into)
        }

        fn hash_files(root: String, paths: String) -> Result<String, types::Error> {
            crate::roots::hash_files(&root, &paths, &|path, offset, length| {
                host_files::read_raw(&root, path, offset, length)
                    .map_err(|e| Error::new(ErrorKind::Io, e).at(path))
            })
            .map_err(Into::into)
        }
    }

    impl snapshot::Guest for Engine {
        fn plan(root: String, options: String) -> Result<String, types::Error> {
            let options = crate::snapshot::Options::from_json(&options)?;
            let listing = host_files::list_tree(&root).map_err(|e| Error::new(ErrorKind::Io, e))?;
            let listing = crate::snapshot::parse_listing(&listing)?;
            let dir = crate::roots::open_root(&root)?;
            let plan = crate::snapshot::plan(listing, &options, |p| crate::roots::resolve(&dir, p));
            Ok(plan.to_json())
        }
    }

    impl manifest::Guest for Engine {
        fn canonicalize(data: String) -> Result<(String, String), types::Error> {
            let encoded = crate::manifest::decode(&data)?.encode();
            let hash = crate::manifest::hash_encoded(&encoded);
            Ok((encoded, hash))
        }
    }

    impl From<Error> for types::Error {
        fn from(e: Error) -> Self {
            let kind = match e.kind {
                ErrorKind::InvalidInput => types::ErrorKind::InvalidInput,
                ErrorKind::NotFound => types::ErrorKind::NotFound,
                ErrorKind::PermissionDenied => types::ErrorKind::PermissionDenied,
                ErrorKind::WrongType => types::ErrorKind::WrongType,
                ErrorKind::Io => types::ErrorKind::Io,
            };
            types::Error { kind, message: e.message, path: e.path }
        }
    }

    export!(Engine);
}
