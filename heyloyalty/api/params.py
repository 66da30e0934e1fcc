"""Request parameters as Heyloyalty clients send them (spec §3 and §6).

Clients disagree about where parameters go: query strings, urlencoded or multipart bodies on
any verb, JSON bodies even on GET, PHP bracket keys (``filter[email][eq][]=x``). Every API view
therefore reads its input through :func:`extract_params`, which merges the query string and the
body into one nested dict, and the coercion helpers below, which accept the loose encodings the
clients use and turn anything else into a :class:`ParamError` the API answers with 400
``{"error": message}``.
"""

from __future__ import annotations

import json
import math
import re
import weakref
from collections.abc import Iterable, Mapping
from typing import IO, Any, cast

from django.core.exceptions import (
    BadRequest,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, QueryDict
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.datastructures import MultiValueDict

__all__ = [
    "FILTER_OPERATORS",
    "ParamError",
    "Params",
    "deep_merge",
    "extract_params",
    "parse_filter",
    "to_bool",
    "to_int",
    "to_list",
]

# §6: the wiki's operator set. The clients themselves only use eq and neq.
FILTER_OPERATORS = frozenset(
    {
        "eq",
        "neq",
        "sw",
        "ew",
        "ct",
        "nct",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "nin",
        "ina",
        "ie",
        "nie",
    }
)
# "is empty" / "is not empty" need no value; §6 says to ignore any that is sent.
_VALUELESS_OPERATORS = frozenset({"ie", "nie"})

# PHP's default max_input_nesting_level. Also keeps a key like a[][][]... from recursing deep.
_MAX_DEPTH = 64

# What PHP treats as an integer array key. Capped so int() never sees thousands of digits.
_INDEX = re.compile(r"0|[1-9][0-9]{0,17}")

# Leading digits, as PHP's intval() reads them: "50?perpage=50" is 50.
_LEADING_INT = re.compile(r"\s*([+-]?[0-9]{1,18})(?![0-9])")

_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"", "0", "false", "off", "no"})

# A boundary line is "--" plus at most 70 characters (RFC 2046); allow slack for odd clients.
_MAX_BOUNDARY_LINE = 1024
_BOUNDARY = re.compile(r"[ -~]{0,200}[!-~]")


class ParamError(ValueError):
    """Bad request input; the API answers 400 ``{"error": message}``."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Params(dict[str, Any]):
    """The merged parameters of one request, plus its uploaded files.

    A dict so views read ``params["member"]["email"]`` directly; ``files`` maps each multipart
    file part's field name to Django's ``UploadedFile`` (last one wins, like scalars), which
    upload handlers may have streamed to a temporary file. ``files`` preserves body order, so
    "the first file part whatever its name" (§5.3) is ``next(iter(params.files.values()))``.
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        files: Mapping[str, UploadedFile] | None = None,
    ) -> None:
        super().__init__(data or {})
        self.files: dict[str, UploadedFile] = dict(files or {})


# The request stream can be read only once, so a second call (decorator, then view) must get
# the first call's result. Weak keys: the entry goes away with the request.
_CACHE: weakref.WeakKeyDictionary[HttpRequest, Params] = weakref.WeakKeyDictionary()


def extract_params(request: HttpRequest) -> Params:
    """Return ``deep_merge(query string, body)`` for any verb, with the body winning (§3).

    Repeated calls on one request return the same (shared) object: treat it as read-only.
    Raises :class:`ParamError` for an unparseable body or one over Django's upload limits.
    """
    cached = _CACHE.get(request)
    if cached is not None:
        return cached
    try:
        query = _expand(_pairs(request.GET))
        body, files = _parse_body(request)
    except MultiPartParserError as exc:
        raise ParamError("malformed multipart/form-data body") from exc
    except TooManyFieldsSent as exc:
        raise ParamError("too many parameters in the request") from exc
    except TooManyFilesSent as exc:
        raise ParamError("too many files in the request") from exc
    except RequestDataTooBig as exc:
        raise ParamError("request body too large") from exc
    except BadRequest as exc:
        raise ParamError(str(exc)) from exc
    params = Params(deep_merge(query, body), files=files)
    _CACHE[request] = params
    return params


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``: dicts merge recursively, otherwise
    ``override`` wins (so ``member[email]`` in the body keeps ``member[firstname]`` from the
    query string)."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


# --- body decoding ---------------------------------------------------------------------------


def _parse_body(request: HttpRequest) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Decode the body by Content-Type, on every verb: [php] <=1.3.1 and [m2] send GET bodies."""
    content_type = request.content_type or ""
    if content_type == "multipart/form-data":
        return _parse_multipart(request)
    if content_type == "application/json" or content_type.endswith("+json"):
        return _parse_json(request.body, encoding=request.encoding), {}
    if content_type == "application/x-www-form-urlencoded":
        return _expand(_pairs(_urlencoded(request))), {}
    if not content_type and request.body:
        return _expand(_pairs(QueryDict(request.body, encoding=request.encoding))), {}
    # Any other type (octet-stream, text/plain...) is not parameters; no client sends one.
    return {}, {}


def _urlencoded(request: HttpRequest) -> QueryDict:
    """Reuse Django's ``request.POST`` where it parsed the same body; parse it ourselves
    otherwise (Django leaves POST empty for other verbs and rejects non-UTF-8 charsets)."""
    charset = (request.encoding or "utf-8").lower()
    if request.method == "POST" and charset in {"utf-8", "utf8"}:
        return request.POST
    return QueryDict(request.body, encoding=request.encoding)


def _parse_json(body: bytes, *, encoding: str | None) -> dict[str, Any]:
    """An object, or ``[]`` for "no payload" ([m2]); bracketed top-level keys are expanded."""
    if not body.strip():
        return {}  # [m2] sends Content-Type: application/json on GETs without a body
    try:
        data = json.loads(body.decode(encoding) if encoding else body)
    except (ValueError, LookupError, RecursionError) as exc:  # incl. UnicodeDecodeError
        raise ParamError("request body is not valid JSON") from exc
    if data == []:
        return {}
    if not isinstance(data, dict):
        raise ParamError("JSON request body must be an object")
    if any("[" in key for key in data):  # [m2] moveListMembers: "handleDuplicates[field]"
        return _expand(data.items())
    return data


def _parse_multipart(request: HttpRequest) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Parse with Django's streaming parser so file parts go through the upload handlers
    (large files to disk) and never through ``request.body``."""
    boundary = (request.content_params or {}).get("boundary")
    fields: QueryDict
    files: MultiValueDict[str, UploadedFile]
    if request.method == "POST" and boundary:
        fields, files = request.POST, request.FILES
    else:
        meta, stream = _multipart_input(request, boundary=boundary)
        parser = MultiPartParser(meta, stream, request.upload_handlers, request.encoding)
        fields, files = parser.parse()
    return _expand(_pairs(fields)), _last_files(files)


def _multipart_input(
    request: HttpRequest, *, boundary: str | None
) -> tuple[Mapping[str, Any], IO[bytes]]:
    """META and stream for MultiPartParser. [php] sets a bare ``multipart/form-data`` header
    without ``boundary=`` (import, webhooktrigger), so read it from the first body line."""
    # MultiPartParser only calls read(); Django hands it the request itself the same way.
    if boundary:
        return request.META, cast("IO[bytes]", request)
    length = _content_length(request)
    if length == 0:
        return request.META, cast("IO[bytes]", request)  # empty body: parser returns nothing
    first_line = request.readline(min(length, _MAX_BOUNDARY_LINE))
    found = first_line[2:].rstrip(b"\r\n").decode("ascii", errors="replace")
    if (
        not first_line.startswith(b"--")
        or not first_line.endswith(b"\n")
        or not _BOUNDARY.fullmatch(found)
        or '"' in found
        or "\\" in found
    ):
        raise ParamError("multipart/form-data body without a boundary")
    meta = {**request.META, "CONTENT_TYPE": f'multipart/form-data; boundary="{found}"'}
    return meta, cast("IO[bytes]", _PrefixedStream(first_line, request))


def _content_length(request: HttpRequest) -> int:
    """CONTENT_LENGTH as an int; missing or garbage counts as no body, as Django does."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class _PrefixedStream:
    """The request stream with the line read to find the boundary put back in front."""

    def __init__(self, prefix: bytes, rest: HttpRequest) -> None:
        self._prefix = prefix
        self._rest = rest

    def read(self, size: int | None = -1) -> bytes:
        """Serve the prefix first, then the rest; short reads are fine for ChunkIter."""
        if not self._prefix:
            return self._rest.read(size)
        if size is None or size < 0:
            data, self._prefix = self._prefix + self._rest.read(), b""
        else:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
        return data


def _last_files(files: MultiValueDict[str, UploadedFile]) -> dict[str, UploadedFile]:
    """One file per field name, the last one, matching "scalars: last occurrence"."""
    return {name: uploads[-1] for name, uploads in files.lists() if uploads}


def _pairs(query: QueryDict) -> list[tuple[str, Any]]:
    """Flatten a QueryDict in key order (first appearance), values in arrival order."""
    return [(key, value) for key, values in query.lists() for value in values]


# --- PHP bracket expansion -------------------------------------------------------------------


class _Node(dict[str, Any]):
    """A container built by bracket expansion (as opposed to a JSON value stored whole).

    Only these become lists when all their keys are indexes, and ``next_index`` is PHP's
    "next free integer key" that ``[]`` appends at.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(data or {})
        self.next_index = 0
        for key in self:
            self._saw(key)

    def _saw(self, key: str) -> None:
        if _INDEX.fullmatch(key):
            self.next_index = max(self.next_index, int(key) + 1)

    def slot(self, segment: str | None) -> str:
        """The key for a path segment; ``None`` (from ``[]``) appends."""
        key = str(self.next_index) if segment is None else segment
        self._saw(key)
        return key


def _expand(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Build nested dicts/lists from PHP-style keys, later values overwriting earlier ones."""
    root = _Node()
    for key, value in pairs:
        path = _split_key(key)
        if len(path) > _MAX_DEPTH:
            raise ParamError(f"{path[0]} is nested too deeply", field=path[0])
        node = root
        for segment in path[:-1]:
            name = node.slot(segment)
            child = node.get(name)
            if not isinstance(child, _Node):
                # PHP: a scalar is replaced by an array; a JSON object is merged into.
                child = _Node(child) if isinstance(child, dict) else _Node()
                node[name] = child
            node = child
        node[node.slot(path[-1])] = value
    return {key: _finish(value) for key, value in root.items()}


def _split_key(key: str) -> list[str | None]:
    """``"a[b][]"`` -> ``["a", "b", None]``.

    Like PHP, text after a closing bracket that does not open another one is ignored. A key
    that starts with ``[`` or never closes its first bracket is kept as a literal name (PHP
    would drop or mangle it; nothing sends one).
    """
    start = key.find("[")
    if start <= 0:
        return [key]
    path: list[str | None] = [key[:start]]
    pos = start
    while pos < len(key) and key[pos] == "[":
        end = key.find("]", pos)
        if end == -1:
            if pos == start:
                return [key]
            break
        path.append(key[pos + 1 : end] or None)
        pos = end + 1
    return path


def _finish(value: Any) -> Any:
    """Turn expansion nodes into plain dicts, or lists in index order when every key is an
    index (``f[0]=a&f[1]=b`` and ``f[]=a&f[]=b`` both mean ``["a", "b"]``)."""
    if not isinstance(value, _Node):
        return value
    items = {key: _finish(child) for key, child in value.items()}
    if items and all(_INDEX.fullmatch(key) for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


# --- coercion --------------------------------------------------------------------------------


def _single(value: Any, *, field: str) -> Any:
    """Unwrap a one-element list: [wp] sends even single-choice values as arrays (§3.2.7)."""
    if not isinstance(value, list):
        return value
    if len(value) > 1:
        raise ParamError(f"{field} takes a single value", field=field)
    return value[0] if value else None


def to_bool(value: Any, *, field: str) -> bool:
    """Read a boolean the way the clients write it: ``1``/``0``, ``true``/``false``, ``on``,
    ``yes``; ``""`` and missing are false because PHP multipart turns ``false`` into ``""``."""
    value = _single(value, field=field)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ParamError(f"{field} must be a boolean (1 or 0)", field=field)


def to_int(value: Any, *, field: str, default: int | None = None) -> int:
    """Read an integer from its leading digits, as PHP does, so the [php] double-``?`` paging
    URL still yields numbers; missing or empty gives ``default`` (or an error without one)."""
    value = _single(value, field=field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is None:
            raise ParamError(f"{field} is required", field=field)
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str) and (match := _LEADING_INT.match(value)):
        return int(match.group(1))
    raise ParamError(f"{field} must be an integer", field=field)


def to_list(value: Any) -> list[Any]:
    """Read a list however it came: ``f[]``/``f[0]`` (already a list), a JSON object with
    index keys (PHP's json_encode of a sparse array), or a lone scalar. Missing is empty."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, dict):
        keys = [str(key) for key in value]
        if all(_INDEX.fullmatch(key) for key in keys):
            by_index = dict(zip(keys, value.values(), strict=True))
            return [by_index[key] for key in sorted(by_index, key=int)]
    return [value]


# --- member filter (§6) ----------------------------------------------------------------------


def parse_filter(value: Any, *, field: str = "filter") -> dict[str, dict[str, list[str]]]:
    """Normalise ``filter[<field>][<op>][]=<value>`` to ``{field: {op: [values]}}``.

    Accepts the nested form from :func:`extract_params`, or a string ([m2] types ``filter`` as
    one): JSON first, then a bracketed fragment such as ``[email][eq][]=x``. Operators are
    checked here; field names are the caller's job. ``ie``/``nie`` get ``[]`` whatever was
    sent. ``field`` names the parameter in errors (segments use ``filters``).
    """
    if isinstance(value, str):
        value = _filter_from_string(value, field=field)
    if value is None or value == [] or value == "":
        return {}
    if not isinstance(value, dict):
        raise ParamError(f"{field} must be an object keyed by field name", field=field)
    return {str(name): _conditions(ops, field=f"{field}[{name}]") for name, ops in value.items()}


def _filter_from_string(text: str, *, field: str) -> Any:
    """Decode a string filter: JSON if it parses, else a query-string fragment."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    pairs = _pairs(QueryDict(text.strip()))
    return _expand((_fragment_key(key, field=field), value) for key, value in pairs)


def _fragment_key(key: str, *, field: str) -> str:
    """``filter[email][eq][]`` and ``[email][eq][]`` -> ``email[eq][]``."""
    if key.startswith(f"{field}["):
        key = key[len(field) :]
    end = key.find("]")
    if key.startswith("[") and end > 1:
        key = key[1:end] + key[end + 1 :]
    return key


def _conditions(ops: Any, *, field: str) -> dict[str, list[str]]:
    """Check one field's ``{op: values}`` and turn the values into a list of strings."""
    if not isinstance(ops, dict):
        raise ParamError(f"{field} must map operators to values", field=field)
    conditions: dict[str, list[str]] = {}
    for op, values in ops.items():
        if op not in FILTER_OPERATORS:
            raise ParamError(f"unknown filter operator {op!r} in {field}", field=field)
        if op in _VALUELESS_OPERATORS:
            conditions[op] = []
        else:
            conditions[op] = [_filter_value(item, field=field) for item in to_list(values)]
    return conditions


def _filter_value(value: Any, *, field: str) -> str:
    """Filter values compare as text; JSON numbers and booleans are accepted too."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return str(value)
    raise ParamError(f"{field} values must be strings or numbers", field=field)
