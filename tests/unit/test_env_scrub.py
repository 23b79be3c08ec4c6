"""Secrets leave the environment: children's and /proc/PID/environ of the process."""

import subprocess
import sys

from mssfs.env_scrub import _values, blank_initial_environment

CHILD = """
import os, subprocess
from mssfs.env_scrub import blank_initial_environment, scrub_secrets
scrub_secrets(os.environ)
print(blank_initial_environment())
own = open("/proc/self/environ", "rb").read()
child = subprocess.run(["cat", "/proc/self/environ"], capture_output=True).stdout
print(b"top-secret" in own, b"top-secret" in child, b"MSS_ACCESS_KEY_ID=visible" in own)
"""


def test_the_process_and_its_children_no_longer_show_the_secret():
    env = {"PATH": "/usr/bin:/bin", "MSS_SECRET_ACCESS_KEY": "top-secret-1",
           "AWS_SESSION_TOKEN": "top-secret-2", "MSS_ACCESS_KEY_ID": "visible"}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.split() == ["2", "False", "False", "True"]


def test_values_are_located_by_name_only():
    block = b"A=1\0MSS_SECRET_ACCESS_KEY=abc\0XMSS_SECRET_ACCESS_KEY=no\0"
    assert _values(block, ["MSS_SECRET_ACCESS_KEY"]) == [(26, 3)]


def test_without_proc_nothing_happens(tmp_path):
    assert blank_initial_environment(proc=str(tmp_path)) == 0
