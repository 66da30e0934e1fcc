"""Argon2id with small parameters, for tests only: the same algorithm and hash format
(``argon2$argon2id$…``) at a fraction of the cost. One test checks the real settings."""

from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 1024
    parallelism = 1
