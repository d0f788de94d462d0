"""Test doubles that ship with the tool, for its tests, its reliability benchmark and a
user's own checks: :mod:`.faulty_s3`, a loopback S3 proxy that fails a share of the
requests it relays, and :mod:`.concurrent_runs`, several ``defects run`` commands started at
once in one folder.

Imports: the standard library only.
"""
