"""The key ring: keys that protect reversible secrets at rest.

Keys come from the environment (or ``NAME_FILE``), never from the database. Each key
has an id, written into every token it makes, so that rotation can add a key, re-encrypt
and retire the old one (the backups-and-keys issue adds rotation and backup keys).

``FIELD_ENCRYPTION_KEYS`` is a comma-separated list of ``id:key`` pairs, newest first;
``key`` is a Fernet key (32 url-safe base64-encoded bytes). The first encrypts; all
decrypt.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Key:
    id: str
    fernet: Fernet


def parse_keys(spec: str, *, name: str) -> list[Key]:
    keys = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key_id, sep, material = item.partition(":")
        if not sep or not key_id or not material:
            raise ImproperlyConfigured(f"{name}: each key is written id:key, got {item[:8]}…")
        try:
            keys.append(Key(key_id, Fernet(material.encode())))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: key {key_id!r} is not a Fernet key (32 url-safe base64 bytes)"
            ) from None
    ids = [k.id for k in keys]
    if len(set(ids)) != len(ids):
        raise ImproperlyConfigured(f"{name}: key ids must be unique")
    return keys


def new_key_spec(key_id: str) -> str:
    return f"{key_id}:{Fernet.generate_key().decode()}"


@lru_cache(maxsize=1)
def _field_keys(spec: str) -> tuple[Key, ...]:
    keys = parse_keys(spec, name="FIELD_ENCRYPTION_KEYS")
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is not set")
    return tuple(keys)


def field_keys() -> tuple[Key, ...]:
    return _field_keys(settings.FIELD_ENCRYPTION_KEYS)


def encrypt(plain: str) -> str:
    """``<key id>$<fernet token>``: the id says which key can open it."""
    primary = field_keys()[0]
    return f"{primary.id}${primary.fernet.encrypt(plain.encode()).decode()}"


def decrypt(stored: str) -> str:
    key_id, _, token = stored.partition("$")
    keys = {k.id: k.fernet for k in field_keys()}
    fernet = keys.get(key_id)
    try:
        if fernet is not None:
            return fernet.decrypt(token.encode()).decode()
        # An unknown id (a key renamed by hand): try them all.
        return MultiFernet(list(keys.values())).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            f"no key in FIELD_ENCRYPTION_KEYS opens a secret sealed with {key_id!r}"
        ) from None
