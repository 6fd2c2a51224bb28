//! The public API of the library crates, held against a committed listing (`public-api.txt` beside this file).
//!
//! Every `pub` item of the crates the facade re-exports (in private modules too: `pub use` re-exports those) is
//! listed with its
//! signature: functions and methods, struct fields, enum variants, traits, constants, type aliases, re-exports and
//! trait impls, each with the `cfg` it sits under. A change to the listing is a change of the API an embedder
//! compiles against: review it, then regenerate with `EKSODUS_BLESS=1 cargo test -p eksodus --test public_api`.
//! (cargo-semver-checks needs the network and a published baseline; this works offline and in review.)

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::{Attribute, Fields, ImplItem, Item, TraitItem, Visibility};

const CRATES: &[&str] = &[
    "eksodus",
    "eksodus-core",
    "eksodus-net",
    "eksodus-access",
    "eksodus-cluster",
    "eksodus-migrate",
    "eksodus-etcd",
    "eksodus-operator",
];

/// Tokens as text with the spacing people write.
fn tidy(tokens: impl ToTokens) -> String {
    let mut s = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" ,", ","),
        (" ;", ";"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        ("& ", "&"),
        ("# [", "#["),
        (" !", "!"),
        (" ?", "?"),
        (" . ", "."),
        ("' ", "'"),
        (" (", "("),
        (" : ", ": "),
        (",)", ")"),
        (", }", " }"),
        ("{ ", "{"),
        (" }", "}"),
    ] {
        while s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s.replace("->", " -> ").replace("  ", " ").replace("=>", " => ")
}

fn is_pub(v: &Visibility) -> bool {
    matches!(v, Visibility::Public(_))
}

/// `#[cfg(...)]` attributes as a prefix; `None` for items hidden from the docs or only built in tests.
fn cfg_of(attrs: &[Attribute]) -> Option<String> {
    let mut out = String::new();
    for a in attrs {
        let text = tidy(a);
        if text.starts_with("#[doc(hidden)") || text == "#[cfg(test)]" {
            return None;
        }
        if a.path().is_ident("cfg") {
            out.push_str(&text);
            out.push(' ');
        }
    }
    Some(out)
}

fn fields(f: &Fields) -> String {
    match f {
        Fields::Unit => String::new(),
        Fields::Unnamed(u) => format!(
            "({})",
            u.unnamed
                .iter()
                .map(|f| if is_pub(&f.vis) { tidy(&f.ty) } else { "_".into() })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Fields::Named(n) => {
            let shown: Vec<String> = n
                .named
                .iter()
                .filter(|f| is_pub(&f.vis))
                .map(|f| format!("{}: {}", f.ident.as_ref().unwrap(), tidy(&f.ty)))
                .collect();
            let hidden = n.named.iter().any(|f| !is_pub(&f.vis));
            format!(" {{ {}{} }}", shown.join(", "), if hidden { ", .." } else { "" })
        }
    }
}

struct Lister {
    out: Vec<String>,
}

impl Lister {
    fn module(&mut self, path: &str, file: &Path, items: &[Item]) {
        let dir = module_dir(file);
        for item in items {
            let Some(cfg) = cfg_of(item_attrs(item)) else { continue };
            let mut line = |text: String| self.out.push(format!("{cfg}{path}::{text}"));
            match item {
                Item::Fn(f) if is_pub(&f.vis) => line(tidy(&f.sig)),
                Item::Struct(s) if is_pub(&s.vis) => {
                    line(format!("struct {}{}{}", s.ident, tidy(&s.generics), fields(&s.fields)))
                }
                Item::Enum(e) if is_pub(&e.vis) => {
                    let variants: Vec<String> =
                        e.variants.iter().map(|v| format!("{}{}", v.ident, fields(&v.fields))).collect();
                    line(format!("enum {}{} {{ {} }}", e.ident, tidy(&e.generics), variants.join(", ")))
                }
                Item::Trait(t) if is_pub(&t.vis) => {
                    let members: Vec<String> = t
                        .items
                        .iter()
                        .map(|i| match i {
                            TraitItem::Fn(f) => tidy(&f.sig),
                            TraitItem::Type(t) => format!("type {}", t.ident),
                            TraitItem::Const(c) => format!("const {}: {}", c.ident, tidy(&c.ty)),
                            other => tidy(other),
                        })
                        .collect();
                    line(format!("trait {}{} {{ {} }}", t.ident, tidy(&t.generics), members.join("; ")))
                }
                Item::Const(c) if is_pub(&c.vis) => line(format!("const {}: {}", c.ident, tidy(&c.ty))),
                Item::Static(s) if is_pub(&s.vis) => line(format!("static {}: {}", s.ident, tidy(&s.ty))),
                Item::Type(t) if is_pub(&t.vis) => line(format!("type {} = {}", t.ident, tidy(&t.ty))),
                Item::Use(u) if is_pub(&u.vis) => line(format!("use {}", tidy(&u.tree))),
                Item::Impl(i) => {
                    let target = tidy(&i.self_ty);
                    let generics = tidy(&i.generics);
                    match &i.trait_ {
                        Some((bang, t, _)) => {
                            let not = if bang.is_some() { "!" } else { "" };
                            self.out.push(format!("{cfg}{path}::impl{generics} {not}{} for {target}", tidy(t)))
                        }
                        None => {
                            for m in &i.items {
                                if let ImplItem::Fn(f) = m {
                                    if let (true, Some(fcfg)) = (is_pub(&f.vis), cfg_of(&f.attrs)) {
                                        self.out.push(format!("{cfg}{fcfg}{path}::{target}::{}", tidy(&f.sig)));
                                    }
                                }
                                if let ImplItem::Const(c) = m {
                                    if is_pub(&c.vis) {
                                        self.out.push(format!("{cfg}{path}::{target}::const {}", c.ident));
                                    }
                                }
                            }
                        }
                    }
                }
                // private modules too: their `pub` items are what `pub use` re-exports (an error type in
                // `mod error`); a module's own line says whether it is public
                Item::Mod(m) => {
                    let sub = format!("{path}::{}", m.ident);
                    self.out.push(format!("{cfg}{}mod {sub}", if is_pub(&m.vis) { "pub " } else { "" }));
                    match &m.content {
                        Some((_, inner)) => self.module(&sub, file, inner),
                        None => {
                            let name = m.ident.to_string();
                            let f = [dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs")]
                                .into_iter()
                                .find(|p| p.exists())
                                .unwrap_or_else(|| panic!("module {sub}: no file in {}", dir.display()));
                            let parsed = parse(&f);
                            self.module(&sub, &f, &parsed.items);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn item_attrs(i: &Item) -> &[Attribute] {
    match i {
        Item::Fn(x) => &x.attrs,
        Item::Struct(x) => &x.attrs,
        Item::Enum(x) => &x.attrs,
        Item::Trait(x) => &x.attrs,
        Item::Const(x) => &x.attrs,
        Item::Static(x) => &x.attrs,
        Item::Type(x) => &x.attrs,
        Item::Use(x) => &x.attrs,
        Item::Impl(x) => &x.attrs,
        Item::Mod(x) => &x.attrs,
        _ => &[],
    }
}

/// The directory a module's children live in: `src/` for `lib.rs` and `mod.rs`, `src/x/` for `src/x.rs`.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap().to_path_buf();
    match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "mod.rs") => parent,
        _ => parent.join(file.file_stem().unwrap()),
    }
}

fn parse(file: &Path) -> syn::File {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn listing() -> String {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut text = String::from(
        "# The public API of eksodus's library crates: reviewed in every change that alters it.\n\
         # Regenerate: EKSODUS_BLESS=1 cargo test -p eksodus --test public_api\n",
    );
    for name in CRATES {
        let lib = crates.join(name).join("src/lib.rs");
        let mut l = Lister { out: vec![] };
        l.module(&name.replace('-', "_"), &lib, &parse(&lib).items);
        l.out.sort();
        l.out.dedup();
        let _ = writeln!(text, "\n## {name} ({} items)", l.out.len());
        for line in l.out {
            let _ = writeln!(text, "{line}");
        }
    }
    text
}

#[test]
fn public_api_matches_the_committed_listing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/public-api.txt");
    let now = listing();
    if std::env::var_os("EKSODUS_BLESS").is_some() {
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != now {
        let old: std::collections::BTreeSet<&str> = committed.lines().collect();
        let new: std::collections::BTreeSet<&str> = now.lines().collect();
        let mut diff = String::new();
        for l in old.difference(&new) {
            let _ = writeln!(diff, "- {l}");
        }
        for l in new.difference(&old) {
            let _ = writeln!(diff, "+ {l}");
        }
        panic!(
            "the public API changed; review the difference and regenerate the listing with \
             `EKSODUS_BLESS=1 cargo test -p eksodus --test public_api`:\n{diff}"
        );
    }
}

#[test]
fn the_listing_sees_what_it_must() {
    let l = listing();
    for needle in [
        "eksodus::use eksodus_cluster::environment::{",
        "eksodus_cluster::environment::EnvironmentBuilder::fn build(self) -> Result<Environment, Error>",
        "eksodus_core::spec::struct EnvironmentSpec",
        "eksodus_migrate::error::enum Error {",
        "pub mod eksodus_cluster::eks",
    ] {
        assert!(l.contains(needle), "the listing has no `{needle}`");
    }
    assert!(!l.contains("fn from_props") && !l.contains("fn sdk_taints"), "private items stay out");
}
