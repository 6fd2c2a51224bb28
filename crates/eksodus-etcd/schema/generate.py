#!/usr/bin/env python3
"""Generates k8s-proto-schema.txt: the protobuf layout of every Kubernetes API message of every release from
1.28 to a development head, with what Go's JSON encoding of each field needs.

Source: the `generated.proto` and `types.go` files of kubernetes/api, apimachinery, apiextensions-apiserver and
kube-aggregator, one directory per release (Go module versions v0.28.0 ... v0.36.3 and `head`; Apache-2.0; the
commits are in SOURCES.txt next to this script). Field numbers and protobuf types come from `generated.proto`;
JSON names, `omitempty`, `omitzero`, `,inline` and whether the Go field is a pointer come from the struct tags in
`types.go`, matched to the proto fields by the number in their `protobuf:"..."` tag.

Releases are read oldest first and a newer one overrides an older one field by field, so a kind or a field that
was removed later (an alpha version, a deprecated field) can still be decoded from an old cluster's etcd.

Usage: generate.py K8S_API_PROTO_DIR > k8s-proto-schema.txt
Output lines:
  M <message path>                      a message, e.g. api.core.v1.ConfigMap
  F <num> <json> <type> <o|r> <flags>   a field: type is a scalar, msg:<path>, or map:<key>:<value>;
                                        o/r = single/repeated; flags: p = Go pointer (present means set, even
                                        to zero), e = omitempty, z = omitzero, i = embedded inline, x = gone
                                        from the newest release that has the message (emitted only when
                                        present, since an absent one says nothing), - = none
  R <apiVersion> <kind> <message path>  a resource kind's message
"""
import os, re, sys

root = sys.argv[1]

# the API group of each kubernetes/api directory (its doc.go's +groupName, which these sources leave out)
GROUPS = {
    'core': '', 'apps': 'apps', 'batch': 'batch', 'autoscaling': 'autoscaling', 'policy': 'policy',
    'extensions': 'extensions', 'admission': 'admission.k8s.io',
    'admissionregistration': 'admissionregistration.k8s.io', 'apidiscovery': 'apidiscovery.k8s.io',
    'apiserverinternal': 'internal.apiserver.k8s.io', 'authentication': 'authentication.k8s.io',
    'authorization': 'authorization.k8s.io', 'certificates': 'certificates.k8s.io',
    'coordination': 'coordination.k8s.io', 'discovery': 'discovery.k8s.io', 'events': 'events.k8s.io',
    'flowcontrol': 'flowcontrol.apiserver.k8s.io', 'imagepolicy': 'imagepolicy.k8s.io',
    'networking': 'networking.k8s.io', 'node': 'node.k8s.io', 'rbac': 'rbac.authorization.k8s.io',
    'resource': 'resource.k8s.io', 'scheduling': 'scheduling.k8s.io', 'storage': 'storage.k8s.io',
    'storagemigration': 'storagemigration.k8s.io', 'lifecycle': 'lifecycle.k8s.io',
    'apiextensions': 'apiextensions.k8s.io', 'apiregistration': 'apiregistration.k8s.io',
}
SCALARS = {'string', 'bytes', 'bool', 'int32', 'int64', 'uint32', 'uint64', 'double', 'float', 'sint32',
           'sint64', 'fixed32', 'fixed64'}


def release_key(name):
    if name == 'head':
        return (999, 0, 0)
    return tuple(int(x) for x in name.lstrip('v').split('.'))


def parse_proto(text):
    """(package, {message: {num: (name, type, card)}})"""
    text = re.sub(r'//[^\n]*', '', text)
    pkg = re.search(r'^package ([\w.]+);', text, re.M).group(1)
    pkg = pkg[len('k8s.io.'):] if pkg.startswith('k8s.io.') else pkg
    messages = {}
    for m in re.finditer(r'\bmessage (\w+) \{(.*?)\n\}', text, re.S):
        fields = {}
        for fm in re.finditer(r'(optional|repeated)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)', m.group(2)):
            card, ty, mk, mv, name, num = fm.groups()

            def resolve(t):
                if t in SCALARS:
                    return t
                t = t.lstrip('.')
                if t.startswith('k8s.io.'):
                    return 'msg:' + t[len('k8s.io.'):]
                if '.' in t:
                    return 'msg:' + t
                return 'msg:%s.%s' % (pkg, t)
            if mk:
                v = resolve(mv)
                t = 'map:%s:%s' % (mk, v)
            else:
                t = resolve(ty)
            fields[int(num)] = (name, t, 'r' if card == 'repeated' else 'o')
        messages[m.group(1)] = fields
    return pkg, messages


def parse_go(text):
    """{struct: {proto num: (json name, flags)}} from the struct tags of types.go"""
    structs = {}
    for m in re.finditer(r'^type (\w+) struct \{(.*?)^\}', text, re.S | re.M):
        fields = {}
        for line in m.group(2).split('\n'):
            line = line.strip()
            if not line or line.startswith('//'):
                continue
            if line.count('`') < 2:
                continue
            decl, tag = line.split('`')[0].split(), line.split('`')[1]
            if not decl:
                continue
            gotype = decl[-1]  # `Name Type` or an embedded `Type`
            pm = re.search(r'protobuf:"[^"]*?,(\d+),', tag)
            if not pm:
                continue
            jm = re.search(r'json:"([^"]*)"', tag)
            parts = jm.group(1).split(',') if jm else ['']
            flags = ''
            if gotype.startswith('*'):
                flags += 'p'
            if 'omitempty' in parts[1:]:
                flags += 'e'
            if 'omitzero' in parts[1:]:
                flags += 'z'
            # Go promotes the fields of an embedded struct that has no JSON name of its own (`json:",inline"`,
            # or `json:""` as newer releases write it)
            if 'inline' in parts[1:] or (len(decl) == 1 and not parts[0]):
                flags += 'i'
            fields[int(pm.group(1))] = (parts[0], flags or '-')
        structs[m.group(1)] = fields
    return structs


def group_version(pkg):
    """apiVersion of a package's kinds, or None for packages of no API group."""
    p = pkg.split('.')
    if p[0] == 'api' and len(p) == 3:
        g = GROUPS.get(p[1])
    elif p[0] in ('apiextensions_apiserver', 'kube_aggregator') and len(p) == 5:
        g = GROUPS.get(p[3])
    else:
        return None
    if g is None:
        raise SystemExit('no API group known for %s: add it to GROUPS' % pkg)
    return (g + '/' if g else '') + p[-1]


releases = sorted((d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and (d == 'head' or d.startswith('v'))), key=release_key)
schema = {}      # message path -> {num: [json, type, card, flags]}
resources = {}   # (apiVersion, kind) -> path
misses = set()
latest = {}      # message path -> field numbers in the newest release that has it
for rel in releases:
    for dirpath, _, files in os.walk(os.path.join(root, rel)):
        if 'generated.proto' not in files:
            continue
        pkg, messages = parse_proto(open(os.path.join(dirpath, 'generated.proto')).read())
        go = parse_go(open(os.path.join(dirpath, 'types.go')).read()) if 'types.go' in files else {}
        for name, fields in messages.items():
            path = pkg + '.' + name
            out = schema.setdefault(path, {})
            latest[path] = set(fields)
            tags = go.get(name)
            for num, (pname, t, card) in fields.items():
                if tags is not None and num in tags:
                    json_name, flags = tags[num]
                    if json_name == '-':
                        json_name = pname  # marshalled by the type's own MarshalJSON
                    # the Go tag's name wins: a few proto names differ (aPIGroup for apiGroup)
                    json_name = json_name or pname
                elif num in out:
                    json_name, flags = out[num][0], out[num][3]
                else:
                    # not in types.go (the wrapper types of apimachinery live in other files): proto name, and
                    # the zero value left out, as their own MarshalJSON does
                    json_name, flags = pname, 'e'
                    if tags is not None:
                        misses.add('%s.%d' % (path, num))
                out[num] = [json_name, t, card, flags]
            gv = group_version(pkg)
            if gv and not name.endswith('TemplateSpec') and fields.get(1, (None, ''))[1] == 'msg:apimachinery.pkg.apis.meta.v1.ObjectMeta' and fields[1][0] == 'metadata':
                resources[(gv, name)] = path

lines = ['# generated by generate.py from kubernetes/api, apimachinery, apiextensions-apiserver and kube-aggregator',
         '# releases: ' + ' '.join(releases)]
for path in sorted(schema):
    lines.append('M ' + path)
    for num in sorted(schema[path]):
        j, t, card, flags = schema[path][num]
        if num not in latest[path]:
            flags = flags.replace('-', '') + 'x'
        lines.append('F %d %s %s %s %s' % (num, j, t, card, flags))
for (av, kind), path in sorted(resources.items()):
    lines.append('R %s %s %s' % (av, kind, path))
print('\n'.join(lines))
print('# %d messages, %d resource kinds, %d releases; %d fields not found in types.go: %s' % (
    len(schema), len(resources), len(releases), len(misses), ' '.join(sorted(misses))), file=sys.stderr)
