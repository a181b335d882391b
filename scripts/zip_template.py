"""Writes the SAM template that deploys the zips scripts/package built.

    .venv/bin/python scripts/zip_template.py target/lambda/arm64     writes target/lambda/arm64/template.yaml

infra/template.yaml builds each function from source (`sam build`, rust-cargolambda). The copy
written here points each function's CodeUri at <binary>/bootstrap.zip beside it instead, without
the build metadata, and takes the directory's architecture; `sam deploy -t` then uploads the very
zips the Terraform module takes (package_dir), with no second build. Text edits, not a YAML round
trip: the short-form intrinsics (!Ref, !Sub...) stay as written.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TEMPLATE = os.path.join(ROOT, "infra", "template.yaml")

BUILD = re.compile(
    r"      BuildMethod: rust-cargolambda\n"
    r"      BuildProperties:\n"
    r"        Binary: (?P<binary>\S+)\n"
    r"(?P<between>(?:(?!  \S).*\n)*?)"
    r"      CodeUri: \S+\n"
)


def main(out_dir):
    arch = os.path.basename(os.path.normpath(out_dir))
    if arch not in ("arm64", "x86_64"):
        sys.exit(f"zip_template: {out_dir} is not target/lambda/<arm64|x86_64>")
    text = open(TEMPLATE).read()
    functions = text.count("Type: AWS::Serverless::Function")
    missing = []

    def to_zip(m):
        zip_path = os.path.join(m["binary"], "bootstrap.zip")
        if not os.path.isfile(os.path.join(out_dir, zip_path)):
            missing.append(zip_path)
        return m["between"] + f"      CodeUri: {zip_path}\n"

    text, found = BUILD.subn(to_zip, text)
    if found != functions:
        sys.exit(f"zip_template: {found} of {functions} functions have a rust-cargolambda build to replace")
    if missing:
        sys.exit(f"zip_template: missing in {out_dir}: {', '.join(missing)} (run scripts/package {arch})")
    text, n = re.subn(r"(?m)^    Architectures: \[\w+\]$", f"    Architectures: [{arch}]", text)
    if n != 1:
        sys.exit("zip_template: expected one Architectures line in Globals")

    # Local files the template names (the SAR readme) are relative to the template: re-anchor them.
    def relocate(m):
        path = os.path.normpath(os.path.join(os.path.dirname(TEMPLATE), m[2]))
        return f"{m[1]}: {os.path.relpath(path, out_dir)}"

    text = re.sub(r"(ReadmeUrl|LicenseUrl): (\.\.?/\S+)", relocate, text)
    out = os.path.join(out_dir, "template.yaml")
    with open(out, "w") as f:
        f.write(text)
    print(f"zip_template: {out} deploys the {functions} zips there ({arch})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
