"""Three small fixes applied to FerretDB 1.24's source before it is built (1.x is frozen upstream).

1. The SQLite backend looks documents up by ``_ferretdb_sjson->'$._id'`` while the unique index it
   creates is on ``_ferretdb_sjson->"_id"``; SQLite only uses an expression index for the identical
   expression, so every lookup, update and delete by ``_id`` scanned the whole table (7.5 ms per update
   at 1,200 documents, growing with the collection). ``->'_id'`` means the same and uses the index.
2. A filter is only pushed down to SQLite when ``_id`` is its sole key and a plain value, so
   ``{_id: x, _rev: r}`` (the job view's revision-checked update) and ``{_id: {$in: [...]}}`` (its
   reads) decoded every document in Go (40 ms per update, 65 ms per read at 1,200 documents). Every
   caller of ``Query`` filters the rows again with the whole filter, so pushing down the ``_id``
   equality or ``$in`` (of strings and ObjectIDs; ``_id`` is never an array) whatever else the filter
   holds returns the same documents.
3. The update handler defers closing each update's query iterator to the end of the whole command, so
   a command of 100 or more updates holds as many pooled connections and never finishes, and the
   database stays locked until the server restarts. Each iterator is closed once its update is done.

Each fix names the exact text it replaces and the number of times it occurs; a source that does not
match fails the build with the file named, rather than building something unknown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ops.stack.exceptions import StackError


@dataclass(frozen=True, slots=True)
class SourcePatch:
    path: str
    old: str
    new: str
    count: int = 1


_UPDATE_BEFORE = """\t\tcloser := iterator.NewMultiCloser()
\t\tdefer closer.Close()

\t\tcloser.Add(res.Iter)

\t\titer := common.FilterIterator(res.Iter, closer, u.Filter)

\t\tif !u.Multi {
\t\t\titer = common.LimitIterator(iter, closer, 1)
\t\t}

\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)
"""
_UPDATE_AFTER = """\t\tcloser := iterator.NewMultiCloser()

\t\tcloser.Add(res.Iter)

\t\titer := common.FilterIterator(res.Iter, closer, u.Filter)

\t\tif !u.Multi {
\t\t\titer = common.LimitIterator(iter, closer, 1)
\t\t}

\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)
\t\tcloser.Close()
"""

_QUERY_BEFORE = """\tif params.Filter.Len() == 1 {
\t\tv, _ := params.Filter.Get("_id")
\t\tswitch v.(type) {
\t\tcase string, types.ObjectID:
\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)
\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
\t\t}
\t}
"""
_QUERY_AFTER = """\twhereClause, args = prepareIDWhereClause(params.Filter)
"""
_EXPLAIN_BEFORE = """\tif params.Filter.Len() == 1 {
\t\tv, _ := params.Filter.Get("_id")
\t\tswitch v.(type) {
\t\tcase string, types.ObjectID:
\t\t\tfilterPushdown = true
\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)
\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
\t\t}
\t}
"""
_EXPLAIN_AFTER = """\twhereClause, args = prepareIDWhereClause(params.Filter)
\tfilterPushdown = whereClause != ""
"""
_INTERFACES = """// check interfaces
var (
"""
# _id can never be an array, so SQL equality on it is MongoDB equality; callers filter the rows again.
_ID_WHERE_CLAUSE = """// prepareIDWhereClause returns the WHERE clause and arguments selecting the documents
// whose _id the filter names by equality or $in (strings and ObjectIDs), or "" when it
// names none that way. The caller applies the whole filter to the rows again, so other
// fields of the filter are allowed.
func prepareIDWhereClause(filter *types.Document) (string, []any) {
\tif filter.Len() == 0 {
\t\treturn "", nil
\t}

\tv, _ := filter.Get("_id")

\tswitch v := v.(type) {
\tcase string, types.ObjectID:
\t\targ := string(must.NotFail(sjson.MarshalSingleValue(v)))
\t\treturn fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn), []any{arg}
\tcase *types.Document:
\t\tif v.Len() != 1 {
\t\t\treturn "", nil
\t\t}

\t\tin, _ := v.Get("$in")

\t\tids, ok := in.(*types.Array)
\t\tif !ok || ids.Len() == 0 || ids.Len() > 1000 {
\t\t\treturn "", nil
\t\t}

\t\targs := make([]any, 0, ids.Len())

\t\tfor i := 0; i < ids.Len(); i++ {
\t\t\tid := must.NotFail(ids.Get(i))

\t\t\tswitch id.(type) {
\t\t\tcase string, types.ObjectID:
\t\t\t\targs = append(args, string(must.NotFail(sjson.MarshalSingleValue(id))))
\t\t\tdefault:
\t\t\t\treturn "", nil
\t\t\t}
\t\t}

\t\treturn fmt.Sprintf(` WHERE %s IN (?%s)`, metadata.IDColumn, strings.Repeat(", ?", len(args)-1)), args
\t}

\treturn "", nil
}

"""

PATCHES: dict[str, tuple[SourcePatch, ...]] = {
    "v1.24.0": (
        SourcePatch(
            "internal/backends/sqlite/metadata/metadata.go",
            """IDColumn = DefaultColumn + "->'$._id'\"""",
            """IDColumn = DefaultColumn + "->'_id'\"""",
        ),
        SourcePatch("internal/backends/sqlite/collection.go", _QUERY_BEFORE, _QUERY_AFTER),
        SourcePatch("internal/backends/sqlite/collection.go", _EXPLAIN_BEFORE, _EXPLAIN_AFTER),
        SourcePatch("internal/backends/sqlite/collection.go", _INTERFACES, _ID_WHERE_CLAUSE + _INTERFACES),
        SourcePatch("internal/handler/msg_update.go", _UPDATE_BEFORE, _UPDATE_AFTER),
    ),
}


def patch_tag(version: str) -> str:
    """A short name for the patches of ``version`` ("" when none), part of the binary's cache path."""
    patches = PATCHES.get(version, ())
    if not patches:
        return ""
    digest = hashlib.sha256(repr(patches).encode()).hexdigest()[:8]
    return f"-storee.{digest}"


def apply_patches(source: Path, version: str) -> int:
    """Apply ``version``'s patches to the writable source tree at ``source``; return how many."""
    patches = PATCHES.get(version, ())
    for patch in patches:
        path = source / patch.path
        try:
            text = path.read_text()
        except OSError as exc:
            raise StackError(f"cannot patch FerretDB {version}: {patch.path} is missing") from exc
        found = text.count(patch.old)
        if found != patch.count:
            raise StackError(
                f"cannot patch FerretDB {version}: {patch.path} has the text to replace {found} times, "
                f"expected {patch.count}"
            )
        path.write_text(text.replace(patch.old, patch.new))
    return len(patches)
