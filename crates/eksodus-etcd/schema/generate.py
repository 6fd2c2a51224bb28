#!/usr/bin/env python3
"""Generates k8s-proto-schema.txt: the protobuf layout of every Kubernetes API message (field numbers, wire
types, messages) with each field's JSON name and whether it is required.

Sources (both Apache-2.0, read from the local cargo registry; run `cargo fetch` with them as dependencies first):
- the k8s-pb crate (prost code generated from the Kubernetes `generated.proto` files): numbers and types;
- the k8s-openapi crate (generated from the Kubernetes OpenAPI spec): JSON names and required fields.

Usage: generate.py K8S_PB_SRC K8S_OPENAPI_VERSION_SRC > k8s-proto-schema.txt
Output lines:
  M <message path>                       a message, e.g. api.core.v1.ConfigMap
  F <num> <json name> <type> <o|r> <0|1> a field: type is a scalar, msg:<path>, or map:<key>:<value>;
                                         o/r = single/repeated; 1 = required (never omitted when empty)
  R <apiVersion> <kind> <message path>   a resource kind's message
"""
import os, re, sys

pb_root, oa_root = sys.argv[1], sys.argv[2]

def norm(rust_name):
    # the two generators split acronyms differently (non_resource_urls / non_resource_ur_ls): compare letters only
    return rust_name.replace('_', '').lower()

ACRONYMS = {'io', 'tls', 'id', 'ip', 'ips', 'url', 'urls', 'uid', 'cidr', 'cidrs', 'api', 'dns', 'json', 'http', 'tcp', 'udp', 'cpu'}

def camel(snake):
    parts = snake.split('_')
    return parts[0] + ''.join(p.upper() if p in ACRONYMS else p[:1].upper() + p[1:] for p in parts[1:])

# --- k8s-openapi: (module path, lowercased struct name) -> {normalized rust field: (json name, required)}, from
# every version directory next to the given one, newest first (older ones still have removed beta types)
openapi = {}
by_name = {}
versions_root = os.path.dirname(oa_root.rstrip('/'))
version_dirs = sorted((d for d in os.listdir(versions_root) if d.startswith('v1_')), key=lambda d: int(d[3:]), reverse=True)
for vd in version_dirs:
    root = os.path.join(versions_root, vd)
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith('.rs') or f == 'mod.rs':
                continue
            text = open(os.path.join(dirpath, f)).read()
            m = re.search(r'pub struct (\w+) \{(.*?)\n\}', text, re.S)
            if not m:
                continue
            name, body = m.group(1), m.group(2)
            fields = {}
            for fm in re.finditer(r'pub (r#)?(\w+): ([^\n]+),', body):
                fields[fm.group(2)] = not fm.group(3).startswith('Option<')
            json_names = dict((r, j) for j, r in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text))
            mod = os.path.relpath(dirpath, root).replace(os.sep, '.')
            entry = {norm(r): (json_names.get(r), req) for r, req in fields.items()}
            # merged across versions, newest first: a field removed later (scaleIO) keeps its name
            for table, key in ((openapi, (mod, name.lower())),
                               (by_name, ('.'.join(mod.split('.')[:2]), name.lower())),
                               (by_name, ('*', name.lower()))):
                merged = table.setdefault(key, {})
                for k, v in entry.items():
                    merged.setdefault(k, v)

def lookup(mod, name):
    """The k8s-openapi fields of a message: same module, else same group in another version, else same name."""
    group = '.'.join(mod.split('.')[:2])
    return openapi.get((mod, name.lower())) or by_name.get((group, name.lower())) or by_name.get(('*', name.lower())) or {}

# --- k8s-pb: messages and fields
messages = {}   # path -> [(num, rust name, type, card)]
resources = []  # (api_version, kind, path)
SCALARS = {'string', 'bytes', 'bool', 'int32', 'int64', 'uint32', 'uint64', 'double', 'float', 'sint32', 'sint64', 'fixed32', 'fixed64'}
for dirpath, _, files in os.walk(pb_root):
    if 'mod.rs' not in files:
        continue
    mod = os.path.relpath(dirpath, pb_root).replace(os.sep, '.')
    text = open(os.path.join(dirpath, 'mod.rs')).read()
    for m in re.finditer(r'pub struct (\w+) \{(\}|.*?\n\})', text, re.S):
        name, body = m.group(1), m.group(2)
        fields = []
        for fm in re.finditer(r'#\[prost\(([^\]]*)\)\]\s*pub (r#)?(\w+):\s*(.*?),\s*\n(?=\s*(?:///|#\[|\}|$))', body + '\n', re.S):
            attrs, rust, ty = fm.group(1), fm.group(3), fm.group(4)
            tag = int(re.search(r'tag = "(\d+)"', attrs).group(1))
            card = 'r' if 'repeated' in attrs else 'o'
            mm = re.search(r'(?:btree_)?map = "(\w+), (\w+)"', attrs)
            kind = attrs.split(',')[0].strip().split(' ')[0]
            def resolve(t):
                # the last path-looking type in the Rust type, made absolute against this module
                cands = re.findall(r'((?:super::)*(?:[a-z_0-9]+::)*[A-Z]\w*)', t)
                cands = [c for c in cands if c.split('::')[-1] not in ('Option', 'Vec', 'String', 'BTreeMap', 'HashMap')]
                p = cands[-1]
                segs = mod.split('.')
                parts = p.split('::')
                while parts and parts[0] == 'super':
                    segs = segs[:-1]
                    parts = parts[1:]
                return '.'.join(segs + parts) if not p.startswith('super') or True else p
            if mm:
                k, v = mm.group(1), mm.group(2)
                if v == 'message':
                    v = 'msg:' + resolve(ty)
                t = 'map:%s:%s' % (k, v)
            elif kind == 'message':
                t = 'msg:' + resolve(ty)
            elif kind in SCALARS:
                t = kind
            else:
                raise SystemExit('unknown prost kind %r in %s.%s' % (attrs, mod, name))
            fields.append((tag, rust, t, card))
        messages[mod + '.' + name] = fields
    for rm in re.finditer(r'impl crate::Resource for (\w+) \{(.*?)\n\}', text, re.S):
        av = re.search(r'const API_VERSION: &\'static str = "([^"]+)"', rm.group(2)).group(1)
        kd = re.search(r'const KIND: &\'static str = "([^"]+)"', rm.group(2)).group(1)
        resources.append((av, kd, mod + '.' + rm.group(1)))

# module of k8s-pb -> module of k8s-openapi
def oa_module(pb_mod):
    return pb_mod  # both use api.core.v1, apimachinery.pkg.apis.meta.v1, ...

misses = 0
out = []
for path in sorted(messages):
    mod, name = path.rsplit('.', 1)
    oa = lookup(oa_module(mod), name)
    out.append('M ' + path)
    for tag, rust, t, card in messages[path]:
        json_name, req = oa.get(norm(rust), (None, False))
        flag = 1 if req else 0
        if json_name is None:
            json_name = camel(rust)
            tname = t.rsplit('.', 1)[-1]
            cap = json_name[:1].upper() + json_name[1:]
            if oa and t.startswith('msg:') and (tname == cap or (json_name, tname) == ('handler', 'ProbeHandler')):
                # a message field the JSON form does not name is an embedded Go struct (`json:",inline"`):
                # its fields appear in the parent
                flag = 2
            elif oa:
                misses += 1

        out.append('F %d %s %s %s %d' % (tag, json_name, t, card, flag))
for av, kd, path in sorted(resources):
    out.append('R %s %s %s' % (av, kd, path))
print('\n'.join(out))
print('# %d messages, %d resources; %d fields named by camelCase because k8s-openapi does not list them' % (len(messages), len(resources), misses), file=sys.stderr)
