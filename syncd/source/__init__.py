"""The source edge: MySQL / MariaDB binlogs and SELECTs turned into syncd's own value types.

The only package that talks to a source server; nothing past it sees a driver or binlog-library type.
"""

from syncd.source import lazy_rsa

lazy_rsa.defer()  # before any module of this package imports PyMySQL
