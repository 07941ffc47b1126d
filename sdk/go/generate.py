"""Writes the Go SDK's request/response structs and service clients from the proto descriptors.

Reads a FileDescriptorSet as JSON on stdin (`buf build -o '-#format=json'`) and writes
types_gen.go and services_gen.go beside this file; `make generate` runs it and
`make check-generated` fails when the committed files differ. Standard library only.

Mapping (proto3 JSON, field names as in the proto): string/bool/int32/double as themselves,
int64 as a JSON string, enums as their names, Timestamp as *time.Time, Struct as
map[string]any, maps and repeated fields as Go maps and slices. Other messages are pointers
(whether one is sent matters), except the few always present, like a session's Item, which
are values. Optional numbers and bools are pointers (their zero is meaningful); in an Update*
request every field but `id` is a pointer, since only the fields that are set change.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "pay.v1"
# Messages always present where they appear, so a struct field of them is a value, not a pointer.
VALUE_MESSAGES = {".pay.v1.Item"}
INITIALISMS = {"id": "ID", "url": "URL", "http": "HTTP", "json": "JSON", "api": "API", "uuid": "UUID", "jwks": "JWKS"}
SCALARS = {
    "TYPE_STRING": "string",
    "TYPE_BOOL": "bool",
    "TYPE_INT32": "int32",
    "TYPE_SINT32": "int32",
    "TYPE_SFIXED32": "int32",
    "TYPE_UINT32": "uint32",
    "TYPE_FIXED32": "uint32",
    "TYPE_INT64": "int64",
    "TYPE_SINT64": "int64",
    "TYPE_SFIXED64": "int64",
    "TYPE_UINT64": "uint64",
    "TYPE_FIXED64": "uint64",
    "TYPE_DOUBLE": "float64",
    "TYPE_FLOAT": "float32",
    "TYPE_BYTES": "[]byte",
}
WELL_KNOWN = {
    ".google.protobuf.Timestamp": "time.Time",
    ".google.protobuf.Struct": "map[string]any",
    ".google.protobuf.Value": "any",
    ".google.protobuf.ListValue": "[]any",
    ".google.protobuf.Empty": "struct{}",
}


def go_name(snake: str) -> str:
    return "".join(INITIALISMS.get(part, part[:1].upper() + part[1:]) for part in snake.split("_") if part)


def comment(text: str | None, indent: str = "") -> str:
    if not text:
        return ""
    lines = [line.strip() for line in text.strip().splitlines()]
    return "".join(f"{indent}// {line}".rstrip() + "\n" for line in lines)


class Generator:
    def __init__(self, descriptor_set: dict) -> None:
        self.files = [f for f in descriptor_set["file"] if f.get("package") == PACKAGE]
        self.messages: dict[str, dict] = {}  # full name -> descriptor
        self.go_names: dict[str, str] = {}
        self.enums: set[str] = set()
        self.comments: dict[tuple[str, tuple[int, ...]], str] = {}
        for f in self.files:
            for loc in f.get("sourceCodeInfo", {}).get("location", []):
                if "leadingComments" in loc:
                    self.comments[(f["name"], tuple(loc["path"]))] = loc["leadingComments"]
            for i, m in enumerate(f.get("messageType", [])):
                self._index(f["name"], m, f".{PACKAGE}", "", (4, i))
            for e in f.get("enumType", []):
                self.enums.add(f".{PACKAGE}.{e['name']}")

    def _index(self, file: str, m: dict, scope: str, prefix: str, path: tuple[int, ...]) -> None:
        full = f"{scope}.{m['name']}"
        m["_file"], m["_path"] = file, path
        self.messages[full] = m
        self.go_names[full] = prefix + m["name"]
        for e in m.get("enumType", []):
            self.enums.add(f"{full}.{e['name']}")
        for i, nested in enumerate(m.get("nestedType", [])):
            self._index(file, nested, full, prefix + m["name"] + "_", (*path, 3, i))

    def field_type(self, parent: dict, field: dict) -> tuple[str, str]:
        """The Go type and the extra json tag option of a field."""
        kind = field["type"]
        name = field.get("typeName", "")
        repeated = field.get("label") == "LABEL_REPEATED"
        if kind == "TYPE_MESSAGE" and self.messages.get(name, {}).get("options", {}).get("mapEntry"):
            key, value = self.messages[name]["field"]
            return f"map[{self.field_type(parent, key)[0]}]{self.element(value)}", ""
        element = self.element(field)
        if repeated:
            return f"[]{element}", ""
        string_tag = (
            ",string" if kind in ("TYPE_INT64", "TYPE_SINT64", "TYPE_SFIXED64", "TYPE_UINT64", "TYPE_FIXED64") else ""
        )
        update = parent["name"].startswith("Update") and field["name"] != "id"
        if kind == "TYPE_MESSAGE":
            # Struct and Value map to Go maps and interfaces, which are nil-able already.
            plain = name in WELL_KNOWN and name != ".google.protobuf.Timestamp"
            if plain or (name in VALUE_MESSAGES and not update):
                return element, string_tag
            return f"*{element}", string_tag
        if update or (field.get("proto3Optional") and kind not in ("TYPE_STRING", "TYPE_BYTES", "TYPE_ENUM")):
            return f"*{element}", string_tag
        return element, string_tag

    def element(self, field: dict) -> str:
        kind = field["type"]
        if kind == "TYPE_MESSAGE":
            name = field["typeName"]
            if name in WELL_KNOWN:
                return WELL_KNOWN[name]
            if name not in self.go_names:
                raise SystemExit(f"generate.py: no Go mapping for {name}")
            return self.go_names[name]
        if kind == "TYPE_ENUM":
            return "string"
        return SCALARS[kind]

    def types(self) -> str:
        out = [HEADER, 'package toffeepay\n\nimport "time"\n\nvar _ time.Time\n']
        for full, m in self.messages.items():
            if m.get("options", {}).get("mapEntry"):
                continue
            doc = self.comments.get((m["_file"], m["_path"])) or f"{m['name']} is the message {full[1:]}."
            out.append("\n" + comment(doc) + f"type {self.go_names[full]} struct {{\n")
            for j, field in enumerate(m.get("field", [])):
                go_type, tag_option = self.field_type(m, field)
                out.append(comment(self.comments.get((m["_file"], (*m["_path"], 2, j))), "\t"))
                out.append(f'\t{go_name(field["name"])} {go_type} `json:"{field["name"]}{tag_option},omitempty"`\n')
            out.append("}\n")
        return "".join(out)

    def services(self) -> str:
        out = [HEADER, 'package toffeepay\n\nimport "context"\n']
        services = [(f, i, s) for f in self.files for i, s in enumerate(f.get("service", []))]
        out.append("\n// Services holds a client for every service of the API, each with a method per RPC.\n")
        out.append("type Services struct {\n")
        for _, _, s in services:
            out.append(f"\t{s['name']} *{s['name']}Client\n")
        out.append("}\n\nfunc newServices(t *transport) Services {\n\treturn Services{\n")
        for _, _, s in services:
            out.append(f"\t\t{s['name']}: &{s['name']}Client{{t: t}},\n")
        out.append("\t}\n}\n")
        for f, i, s in services:
            doc = self.comments.get((f["name"], (6, i))) or ""
            out.append(f"\n// {s['name']}Client calls {PACKAGE}.{s['name']}.\n")
            if doc:
                out.append("//\n" + comment(doc))
            out.append(f"type {s['name']}Client struct {{\n\tt *transport\n}}\n")
            for j, method in enumerate(s.get("method", [])):
                read = method.get("options", {}).get("idempotencyLevel") == "NO_SIDE_EFFECTS"
                request, response = self.go_names[method["inputType"]], self.go_names[method["outputType"]]
                doc = self.comments.get((f["name"], (6, i, 2, j)))
                kind = (
                    "A read, retried without an Idempotency-Key."
                    if read
                    else "A change: every attempt carries one Idempotency-Key."
                )
                out.append(f"\n// {method['name']} calls /{PACKAGE}.{s['name']}/{method['name']}. {kind}\n")
                if doc:
                    out.append("//\n" + comment(doc))
                client, path, mutating = f"{s['name']}Client", f"/{PACKAGE}.{s['name']}/{method['name']}", not read
                out.append(
                    f"func (c *{client}) {method['name']}"
                    f"(ctx context.Context, req *{request}, opts ...CallOption) (*{response}, error) {{\n"
                    f"\tout := new({response})\n"
                    f'\tif err := c.t.call(ctx, "{path}", {str(mutating).lower()}, req, out, opts); err != nil {{\n'
                    "\t\treturn nil, err\n\t}\n\treturn out, nil\n}\n"
                )
        return "".join(out)


HEADER = "// Code generated by sdk/go/generate.py from proto/. DO NOT EDIT.\n\n"


def main() -> None:
    generator = Generator(json.load(sys.stdin))
    for name, text in (("types_gen.go", generator.types()), ("services_gen.go", generator.services())):
        (HERE / name).write_text(text)
    # gofmt aligns the struct fields; without Go (a machine that only regenerates) the text is still valid Go.
    try:
        subprocess.run(["gofmt", "-w", "types_gen.go", "services_gen.go"], cwd=HERE, check=True)
    except FileNotFoundError:
        print("generate.py: gofmt not found; run make sdk-deps for formatted output", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
