"""Tracker error replies: the codes and the texts mogilefsd sends for them."""

from __future__ import annotations

# The texts mogilefsd 2.73 has for its error codes. A code missing here is
# sent with the code itself as its text (``ERR unknown_key unknown_key``).
MESSAGES: dict[str, str] = {
    "after_mismatch": "Pattern does not match the after-value?",
    "bad_params": "Invalid parameters to command; please see documentation",
    "class_exists": "That class already exists in that domain",
    "class_has_files": "Class still has files, unable to delete",
    "class_not_found": "Class not found",
    "db": "Database error",
    "domain_exists": "That domain already exists",
    "domain_has_files": "Domain still has files, unable to delete",
    "domain_not_found": "Domain not found",
    "failure": "Operation failed",
    "host_exists": "That host already exists",
    "host_mismatch": "The device specified doesn't belong to the host specified",
    "host_not_empty": "Unable to delete host; it contains devices still",
    "host_not_found": "Host not found",
    "invalid_mindevcount": "The mindevcount must be at least 1",
    "key_exists": "Target key name already exists; can't overwrite.",
    "no_class": "No class provided",
    "no_device": "Device not found",
    "no_devices": "No devices found to store file",
    "no_domain": "No domain provided",
    "no_host": "No host provided",
    "no_ip": "IP required to create host",
    "no_port": "Port required to create host",
    "no_temp_file": "No tempfile or file already closed",
    "nodel_default_class": "Cannot delete the default class",
    "none_match": "No keys match that pattern and after-value (if any).",
    "state_too_high": "Status cannot go from dead to alive; must use down",
    "unknown_command": "Unknown server command",
    "unknown_host": "Host not found",
    "unknown_state": "Invalid/unknown state",
    "unreg_domain": "Domain name invalid/not found",
}


class CommandError(Exception):
    """A command failed; the tracker answers ``ERR <code> <text>``."""

    def __init__(self, code: str, text: str | None = None) -> None:
        self.code = code
        self.text = text or MESSAGES.get(code, code)
        super().__init__(f"{code}: {self.text}")
