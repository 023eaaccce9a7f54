//! The jobattach engine component. This file only binds the WIT exports to the domain modules;
//! the rules live in those modules, which also compile natively so `cargo test` can run them.

pub mod abspath;
pub mod attachments;
pub mod diff;
pub mod download;
pub mod error;
pub mod formats;
pub mod glob;
pub mod grouping;
pub mod hash;
pub mod hash_items;
pub mod internal_names;
pub mod job_outputs;
pub mod json;
pub mod manifest;
pub mod manifest_store;
pub mod manifest_v2025;
pub mod mirror;
pub mod mount;
pub mod output_dirs;
pub mod pathmap;
pub mod portable;
pub mod queue_outputs;
pub mod relpath;
#[cfg(feature = "component")]
pub mod roots;
pub mod snapshot;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
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

    use exports::jobattach::engine::{hashing, info, manifest, snapshot, submit, sync, types};
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
            Ok(fit(crate::roots::hash_files(&root, &paths, &raw_reader(&root))?)?)
        }

        fn check_items(items: String) -> Result<u32, types::Error> {
            Ok(crate::hash_items::parse(&items)?.len() as u32)
        }
    }

    /// Reads files WASI cannot name through the host (see `host-files.read-raw`).
    fn raw_reader(root: &str) -> impl Fn(&str, u64, u32) -> crate::error::Result<Vec<u8>> + '_ {
        move |path, offset, length| {
            host_files::read_raw(root, path, offset, length)
                .map_err(|e| Error::new(ErrorKind::Io, e).at(path))
        }
    }

    fn snapshot_options(o: &snapshot::Options) -> crate::error::Result<crate::snapshot::Options> {
        let v2025 = match o.format {
            None | Some(types::ManifestFormat::V20230303) => false,
            Some(types::ManifestFormat::V202512Snapshot) => true,
            Some(types::ManifestFormat::V202512Diff) => {
                return Err(Error::invalid("a snapshot is v2023-03-03 or v2025-12-snapshot"))
            }
        };
        crate::snapshot::Options::new(&o.include, &o.exclude, v2025, &o.host_roots)
    }

    fn plan_root(
        root: &str,
        options: &snapshot::Options,
    ) -> crate::error::Result<crate::snapshot::Plan> {
        let listing = host_files::list_tree(root).map_err(|e| Error::new(ErrorKind::Io, e))?;
        plan_listing(root, &listing, options)
    }

    fn plan_listing(
        root: &str,
        listing: &str,
        options: &snapshot::Options,
    ) -> crate::error::Result<crate::snapshot::Plan> {
        let options = snapshot_options(options)?;
        let listing = crate::snapshot::parse_listing(listing)?;
        let dir = crate::roots::open_root(root)?;
        let plan = crate::snapshot::plan(listing, &options, &mut crate::roots::RootLinks(&dir));
        crate::formats::check_size(plan.manifest_len(), "would be")?;
        Ok(plan)
    }

    /// A result as large as the manifests it comes from, refused past what one call gives
    /// back (see `formats::MAX_BYTES`) with the limit named, rather than trapping in the host.
    fn fit(result: String) -> crate::error::Result<String> {
        if result.len() > crate::formats::MAX_BYTES {
            return Err(Error::invalid(format!(
                "the engine's answer would be {} bytes, over the {} bytes (120 MiB) one call \
                 gives back: the manifests or files given are too many for one call",
                result.len(),
                crate::formats::MAX_BYTES
            )));
        }
        Ok(result)
    }

    impl snapshot::Guest for Engine {
        fn plan(root: String, options: snapshot::Options) -> Result<String, types::Error> {
            Ok(fit(plan_root(&root, &options)?.to_json())?)
        }

        fn plan_listed(
            root: String,
            listing: String,
            options: snapshot::Options,
        ) -> Result<String, types::Error> {
            Ok(fit(plan_listing(&root, &listing, &options)?.to_json())?)
        }

        fn diff(
            root: String,
            manifest: String,
            options: snapshot::Options,
            by_hash: bool,
        ) -> Result<String, types::Error> {
            let base = crate::formats::decode_v2023(&manifest)?;
            let plan = plan_root(&root, &options)?;
            let dir = crate::roots::open_root(&root)?;
            let raw = raw_reader(&root);
            let hash = |p: &[u16]| crate::roots::hash_path(&dir, p, &raw);
            Ok(fit(crate::diff::diff_tree(&base, &plan, by_hash, hash)?.to_json())?)
        }
    }

    impl manifest::Guest for Engine {
        fn canonicalize(data: String) -> Result<manifest::Canonical, types::Error> {
            Ok(canonical(&crate::formats::decode(&data)?)?)
        }

        fn build(
            format: types::ManifestFormat,
            entries: String,
        ) -> Result<manifest::Canonical, types::Error> {
            Ok(canonical(&crate::formats::build(format_name(format), &entries)?)?)
        }

        fn convert(
            data: String,
            format: types::ManifestFormat,
        ) -> Result<manifest::Canonical, types::Error> {
            Ok(canonical(&crate::formats::decode(&data)?.convert(format_name(format))?)?)
        }

        fn diff(old: String, new: String) -> Result<String, types::Error> {
            let (old, new) =
                (crate::formats::decode_v2023(&old)?, crate::formats::decode_v2023(&new)?);
            let d = crate::diff::diff(old.entries(), new.entries(), crate::diff::same_content)?;
            Ok(fit(d.to_json())?)
        }

        fn outputs(inputs: String, current: String) -> Result<manifest::Canonical, types::Error> {
            let (inputs, current) =
                (crate::formats::decode_v2023(&inputs)?, crate::formats::decode_v2023(&current)?);
            let out = crate::diff::outputs(&inputs, &current)?;
            Ok(canonical(&crate::formats::AnyManifest::V2023(out))?)
        }

        fn select(
            data: String,
            include: Vec<String>,
            exclude: Vec<String>,
        ) -> Result<manifest::Canonical, types::Error> {
            let filter = crate::glob::Filter::new(&include, &exclude)?;
            let m = crate::diff::select(&crate::formats::decode_v2023(&data)?, &filter)?;
            Ok(canonical(&crate::formats::AnyManifest::V2023(m))?)
        }

        fn merge(manifests: Vec<String>) -> Result<manifest::Canonical, types::Error> {
            // Each text is dropped once decoded: a merge of large manifests holds one at a time.
            let decoded = manifests
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    crate::formats::decode_v2023(&m)
                        .map_err(|e| e.within(&format!("manifests[{i}]")))
                })
                .collect::<crate::error::Result<Vec<_>>>()?;
            let merged = crate::formats::AnyManifest::V2023(crate::diff::merge(decoded)?);
            Ok(canonical(&merged)?)
        }
    }

    fn format_name(format: types::ManifestFormat) -> &'static str {
        match format {
            types::ManifestFormat::V20230303 => "v2023-03-03",
            types::ManifestFormat::V202512Snapshot => "v2025-12-snapshot",
            types::ManifestFormat::V202512Diff => "v2025-12-diff",
        }
    }

    fn format_of(name: &str) -> types::ManifestFormat {
        match name {
            "v2025-12-snapshot" => types::ManifestFormat::V202512Snapshot,
            "v2025-12-diff" => types::ManifestFormat::V202512Diff,
            _ => types::ManifestFormat::V20230303,
        }
    }

    fn style(s: types::PathStyle) -> crate::abspath::Style {
        match s {
            types::PathStyle::Posix => crate::abspath::Style::Posix,
            types::PathStyle::Windows => crate::abspath::Style::Windows,
        }
    }

    fn object(o: crate::attachments::ManifestObject) -> types::ManifestObject {
        types::ManifestObject {
            key: o.key,
            content_type: o.content_type.to_string(),
            metadata: o.metadata,
        }
    }

    /// A manifest as the host gets it; refused over the limit (`formats::MAX_BYTES`), so that
    /// what a submission builds is what a download can decode.
    fn canonical(m: &crate::formats::AnyManifest) -> crate::error::Result<manifest::Canonical> {
        let encoded = m.encode();
        crate::formats::check_size(encoded.len(), "would be")?;
        let entries = match m {
            // Its encoding already lists every entry, with its full path, under `paths`.
            crate::formats::AnyManifest::V2023(_) => String::new(),
            crate::formats::AnyManifest::V2025(_) => m.view(),
        };
        // The newer format's view crosses beside it.
        crate::formats::check_size(encoded.len() + entries.len(), "would be, with its entries,")?;
        Ok(manifest::Canonical {
            format: format_of(m.format()),
            hash: crate::manifest::hash_encoded(&encoded),
            entries,
            encoded,
        })
    }

    impl submit::Guest for Engine {
        fn group(request: submit::GroupRequest) -> Result<String, types::Error> {
            let locations: Vec<crate::grouping::Location> = request
                .locations
                .into_iter()
                .map(|l| crate::grouping::Location {
                    name: l.name,
                    path: l.path,
                    shared: l.kind == submit::LocationKind::Shared,
                })
                .collect();
            let style = style(request.style);
            let found = crate::grouping::group(
                style,
                &request.paths,
                &locations,
                request.require_paths_exist,
            )?;
            Ok(fit(found)?)
        }

        fn describe(request: submit::Submission) -> Result<submit::Description, types::Error> {
            let submission = crate::attachments::Submission {
                root_prefix: request.root_prefix,
                farm: request.farm_id,
                queue: request.queue_id,
                file_system: match request.file_system {
                    submit::FileSystem::Copied => "COPIED",
                    submit::FileSystem::Virtual => "VIRTUAL",
                },
                path_format: match request.path_format {
                    types::PathStyle::Posix => "posix",
                    types::PathStyle::Windows => "windows",
                },
                roots: request
                    .roots
                    .into_iter()
                    .map(|r| crate::attachments::SubmittedRoot {
                        root: r.root,
                        location: r.location,
                        outputs: r.outputs,
                        manifest_hash: r.manifest_hash,
                        guid: r.guid,
                    })
                    .collect(),
            };
            let (manifests, attachments) = crate::attachments::describe(&submission)?;
            Ok(submit::Description {
                manifests: manifests.into_iter().map(|m| m.map(object)).collect(),
                attachments,
            })
        }
    }

    impl sync::Guest for Engine {
        fn session_root(root_path: String) -> String {
            crate::attachments::session_root(&root_path)
        }

        fn layout(root_prefix: String) -> sync::ObjectLayout {
            let l = crate::attachments::layout(&root_prefix);
            sync::ObjectLayout {
                data_prefix: l.data_prefix,
                data_suffix: l.data_suffix,
                manifests_prefix: l.manifests_prefix,
            }
        }

        fn content_digests(root_prefix: String, keys: Vec<String>) -> Vec<Option<String>> {
            let l = crate::attachments::layout(&root_prefix);
            let digest = |k: &String| crate::attachments::content_digest(&l, k).map(str::to_owned);
            keys.iter().map(digest).collect()
        }

        fn plan_mirror(request: sync::MirrorRequest) -> Result<String, types::Error> {
            let request = crate::mirror::Request {
                source: &request.source,
                dest: &request.dest,
                delete: request.delete,
                by_hash: request.by_hash,
                include: &request.include,
                exclude: &request.exclude,
                dry_run: request.dry_run,
                source_name: &request.source_name,
                dest_name: &request.dest_name,
            };
            Ok(fit(crate::mirror::plan(&request)?)?)
        }

        fn refused_entries(
            destination: sync::Destination,
            entries: String,
        ) -> Result<String, types::Error> {
            Ok(fit(crate::portable::refused_json(&file_system_of(destination), &entries)?)?)
        }

        fn output_manifest(
            r: sync::OutputManifestRequest,
        ) -> Result<types::ManifestObject, types::Error> {
            let ids = [&r.farm_id, &r.queue_id, &r.job_id, &r.step_id, &r.task_id];
            let location = r.location.as_deref().filter(|l| !l.is_empty());
            Ok(object(crate::attachments::output_manifest(
                &r.root_prefix,
                ids.map(String::as_str),
                &r.session_action_id,
                r.start_us,
                &r.root,
                location,
            )))
        }

        fn outputs_prefix(r: sync::JobOutputs) -> Result<String, types::Error> {
            Ok(crate::job_outputs::prefix(
                &r.root_prefix,
                &r.farm_id,
                &r.queue_id,
                &r.job_id,
                r.step_id.as_deref().unwrap_or_default(),
                r.task_id.as_deref().unwrap_or_default(),
            )?)
        }

        fn select_outputs(listing: Vec<sync::ListedObject>) -> Vec<String> {
            let objects: Vec<(String, i64)> =
                listing.into_iter().map(|o| (o.key, o.last_modified_us)).collect();
            crate::job_outputs::select(&objects)
        }

        fn queue_outputs_prefix(
            root_prefix: String,
            farm_id: String,
            queue_id: String,
        ) -> Result<String, types::Error> {
            Ok(crate::job_outputs::queue_prefix(&root_prefix, &farm_id, &queue_id)?)
        }

        fn queue_outputs(
            r: sync::QueueOutputsRequest,
        ) -> Result<sync::QueueOutputsPlan, types::Error> {
            use crate::queue_outputs::{Done, QueueOutput};
            let pairs = |list: Vec<sync::ListedObject>| -> Vec<(String, i64)> {
                list.into_iter().map(|o| (o.key, o.last_modified_us)).collect()
            };
            let listed = |done: Vec<(String, i64)>| -> Vec<sync::ListedObject> {
                done.into_iter()
                    .map(|(key, last_modified_us)| sync::ListedObject { key, last_modified_us })
                    .collect()
            };
            let output = |o: QueueOutput| sync::QueueOutput {
                key: o.key,
                last_modified_us: o.last_modified_us,
                job_id: o.job,
                step_id: o.step,
                task_id: o.task,
                session_action_id: o.session_action,
            };
            let since =
                Done { complete_before_us: r.since.complete_before_us, done: pairs(r.since.done) };
            let plan =
                crate::queue_outputs::plan(&r.prefix, &pairs(r.listing), &since, r.lookback_us)?;
            Ok(sync::QueueOutputsPlan {
                batches: plan
                    .batches
                    .into_iter()
                    .map(|b| sync::QueueOutputsBatch {
                        job_id: b.job,
                        outputs: b.outputs.into_iter().map(output).collect(),
                        complete_before_us: b.complete_before_us,
                    })
                    .collect(),
                after: sync::QueueOutputsDone {
                    complete_before_us: plan.after.complete_before_us,
                    done: listed(plan.after.done),
                },
            })
        }

        fn manifest_root(metadata: Vec<(String, String)>) -> Result<Option<String>, types::Error> {
            Ok(crate::attachments::manifest_root(&metadata)?)
        }

        fn stored_manifest(
            r: sync::StoredManifestRequest,
        ) -> Result<types::ManifestObject, types::Error> {
            let location = r.location.as_deref().filter(|l| !l.is_empty());
            Ok(object(crate::manifest_store::stored_manifest(
                &r.root_prefix,
                &r.prefix,
                &r.name,
                r.root.as_deref(),
                location,
            )?))
        }

        fn downloaded_manifest_name(root: String) -> String {
            crate::manifest_store::downloaded_name(&root)
        }

        fn map_path(
            rules: Vec<sync::PathMappingRule>,
            path: String,
            separator: String,
        ) -> Result<Option<String>, types::Error> {
            let rules: Vec<crate::pathmap::PathRule> = rules
                .into_iter()
                .map(|r| crate::pathmap::PathRule {
                    style: style(r.source_path_format),
                    source: r.source_path,
                    destination: r.destination_path,
                })
                .collect();
            Ok(crate::pathmap::map_path(&rules, &path, &separator)?)
        }
    }

    // Downloads: the plan, output patterns and internal names (wit/download.wit).

    use exports::jobattach::engine::download;

    fn file_system_of(d: sync::Destination) -> crate::portable::Destination {
        use crate::portable::Platform;
        let platform = match d.platform {
            sync::Platform::Linux => Platform::Linux,
            sync::Platform::Macos => Platform::MacOs,
            sync::Platform::Windows => Platform::Windows,
        };
        crate::portable::Destination::given(
            platform,
            d.root_length,
            d.path_max,
            d.name_max,
            d.long_paths,
            d.lengths_only,
        )
    }

    fn destinations_of(
        given: Vec<download::Destination>,
    ) -> crate::error::Result<Vec<crate::download::Destination>> {
        given
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let within = |e: Error| e.within(&format!("destinations[{i}]"));
                Ok(crate::download::Destination {
                    manifest: crate::formats::decode_v2023(&d.manifest).map_err(within)?,
                    found: crate::download::parse_found(&d.found).map_err(within)?,
                    digests: match d.digests {
                        Some(text) => Some(crate::download::parse_digests(&text).map_err(within)?),
                        None => None,
                    },
                    shown: crate::download::parse_shown(&d.shown).map_err(within)?,
                })
            })
            .collect()
    }

    fn internal_kind(kind: crate::internal_names::Kind) -> download::InternalKind {
        match kind {
            crate::internal_names::Kind::Staging => download::InternalKind::Staging,
            crate::internal_names::Kind::Temporary => download::InternalKind::Temporary,
            crate::internal_names::Kind::Mounts => download::InternalKind::Mounts,
        }
    }

    impl download::Guest for Engine {
        fn plan(
            destinations: Vec<download::Destination>,
            policy: download::ConflictPolicy,
        ) -> Result<download::Outcome, types::Error> {
            use crate::download::{Outcome, Policy};
            let policy = match policy {
                download::ConflictPolicy::Overwrite => Policy::Overwrite,
                download::ConflictPolicy::Skip => Policy::Skip,
                download::ConflictPolicy::Error => Policy::Error,
                download::ConflictPolicy::CreateCopy => Policy::CreateCopy,
            };
            let dests = destinations_of(destinations)?;
            let plan = match crate::download::plan_or_hash(&dests, policy)? {
                Outcome::Hash(rows) => {
                    let rows = rows.into_iter().map(fit).collect::<crate::error::Result<_>>()?;
                    return Ok(download::Outcome::Hash(rows));
                }
                Outcome::Planned(plan) => plan,
            };
            let t = &plan.totals;
            Ok(download::Outcome::Planned(download::DownloadPlan {
                files: t.files,
                bytes: t.bytes,
                unchanged_files: t.unchanged_files,
                downloaded_files: t.downloaded_files,
                downloaded_bytes: t.downloaded_bytes,
                contents: t.contents,
                content_bytes: t.content_bytes,
                plan: fit(plan.to_json())?,
            }))
        }

        fn output_patterns(
            directories: Vec<String>,
            style: types::PathStyle,
        ) -> Option<Vec<String>> {
            crate::output_dirs::patterns(&directories, style == types::PathStyle::Windows)
        }

        fn copy_name(
            file_system: sync::Destination,
            path: String,
            n: u32,
        ) -> Result<String, types::Error> {
            let crate::json::Value::String(path) = crate::json::parse(&path)? else {
                return Err(Error::invalid("path must be a JSON string").into());
            };
            let name = crate::download::copy_name(&file_system_of(file_system), &path, n)?;
            let mut out = String::new();
            crate::json::write_string(&mut out, &name);
            Ok(out)
        }

        fn internal_name(
            kind: download::InternalKind,
            random: Vec<u8>,
        ) -> Result<String, types::Error> {
            let kind = match kind {
                download::InternalKind::Staging => crate::internal_names::Kind::Staging,
                download::InternalKind::Temporary => crate::internal_names::Kind::Temporary,
                download::InternalKind::Mounts => crate::internal_names::Kind::Mounts,
            };
            Ok(crate::internal_names::name(kind, &random)?)
        }

        fn internal_kinds(names: Vec<String>) -> Vec<Option<download::InternalKind>> {
            names.iter().map(|n| crate::internal_names::kind_of(n).map(internal_kind)).collect()
        }
    }

    use exports::jobattach::engine::mount;
    use std::cell::RefCell;

    /// A root's tree, behind a RefCell: a resource's methods take `&self`.
    struct MountTree(RefCell<crate::mount::Tree>);

    impl mount::Guest for Engine {
        type Tree = MountTree;
    }

    fn fs_error(e: crate::mount::FsError) -> mount::FsError {
        use crate::mount::FsError as E;
        match e {
            E::NotFound => mount::FsError::NotFound,
            E::Exists => mount::FsError::Exists,
            E::NotDirectory => mount::FsError::NotDirectory,
            E::IsDirectory => mount::FsError::IsDirectory,
            E::NotEmpty => mount::FsError::NotEmpty,
            E::Invalid => mount::FsError::Invalid,
        }
    }

    fn mount_node(n: crate::mount::Node) -> mount::Entry {
        use crate::mount::Content as C;
        let content = match n.content {
            C::Directory => mount::Content::Directory,
            C::Object(d) => mount::Content::Object(d),
            C::Layer(l) => mount::Content::Layer(l),
            C::Symlink(t) => mount::Content::Symlink(String::from_utf16_lossy(&t)),
        };
        mount::Entry {
            id: n.id,
            content,
            size: n.size,
            mtime_us: n.mtime_us,
            executable: n.executable,
        }
    }

    impl mount::GuestTree for MountTree {
        fn open(manifest: String, now_us: i64) -> Result<mount::Tree, types::Error> {
            let tree = crate::mount::Tree::open(&manifest, now_us)?;
            Ok(mount::Tree::new(MountTree(RefCell::new(tree))))
        }

        fn lookup(&self, path: String) -> Result<mount::Entry, mount::FsError> {
            self.0.borrow().lookup(&path).map(mount_node).map_err(fs_error)
        }

        fn entries(&self, path: String) -> Result<String, mount::FsError> {
            self.0.borrow().entries(&path).map_err(fs_error)
        }

        fn create(
            &self,
            path: String,
            directory: bool,
            now_us: i64,
        ) -> Result<mount::Entry, mount::FsError> {
            self.0.borrow_mut().create(&path, directory, now_us).map(mount_node).map_err(fs_error)
        }

        fn copy_up(&self, path: String) -> Result<mount::Entry, mount::FsError> {
            self.0.borrow_mut().copy_up(&path).map(mount_node).map_err(fs_error)
        }

        fn remove(&self, path: String, directory: bool) -> Result<Option<u64>, mount::FsError> {
            self.0.borrow_mut().remove(&path, directory).map_err(fs_error)
        }

        fn rename(&self, source: String, target: String) -> Result<Option<u64>, mount::FsError> {
            self.0.borrow_mut().rename(&source, &target).map_err(fs_error)
        }

        fn layer(&self) -> String {
            self.0.borrow().layer()
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
