"""Runs a `beauty-app` sub-command (train, dataset mine) as a child process and streams its output.

Training runs in its own process so that cancelling it, or a crash inside torch, never takes the
window down. stdout carries one JSON object per line (`--progress jsonl`); stderr carries human
messages. Both arrive in arbitrary chunks, so lines are reassembled here before parsing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from ... import cpu_threads

log = logging.getLogger(__name__)

# The CLI's exit status after SIGTERM/Ctrl-C, once it has saved a resumable state.
EXIT_INTERRUPTED = 130

_LINE_BREAK = re.compile(rb"\r\n|\n|\r")


class LineBuffer:
    """Splits a byte stream that arrives in chunks into complete text lines (keeps the partial tail)."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[str]:
        """Add a chunk; return the lines it completed (without line ends; blank lines dropped)."""
        buffer = self._tail + data
        # A chunk ending in "\r" may be the first half of "\r\n": decide when the next chunk comes.
        held = b"\r" if buffer.endswith(b"\r") else b""
        parts = _LINE_BREAK.split(buffer[: len(buffer) - len(held)])
        self._tail = parts.pop() + held
        return [line for line in (p.decode("utf-8", errors="replace").rstrip() for p in parts) if line]

    def flush(self) -> list[str]:
        """Whatever is left after the stream ended (a last line without a line end)."""
        tail, self._tail = self._tail, b""
        text = tail.decode("utf-8", errors="replace").strip()
        return [text] if text else []


def cli_command(args: list[str]) -> tuple[str, list[str]]:
    """The program and arguments that run `beauty-app ARGS` with this very interpreter (or bundle)."""
    if getattr(sys, "frozen", False):
        # A frozen app bundle: its executable is the CLI when given arguments.
        return sys.executable, list(args)
    return sys.executable, ["-m", "beauty_app", *args]


def _child_environment() -> QProcessEnvironment:
    env = QProcessEnvironment.systemEnvironment()
    # The child must import the same beauty_app as this window, installed or not.
    package_parent = str(Path(__file__).resolve().parents[3])
    existing = env.value("PYTHONPATH", "")
    env.insert("PYTHONPATH", package_parent + (os.pathsep + existing if existing else ""))
    env.insert("PYTHONUNBUFFERED", "1")
    env.insert("PYTHONIOENCODING", "utf-8")
    # The window asked OpenMP for sleeping waits (one query at a time); training runs in batches and
    # keeps OpenMP's default unless the user chose a policy.
    if cpu_threads.chosen_for_this_process():
        env.remove(cpu_threads.WAIT_POLICY_VARIABLE)
    return env


class CliProcess(QObject):
    """One `beauty-app` child process at a time, with line-wise output and a polite-then-firm stop.

    Signals:
        eventReceived(dict): a JSON object printed on a stdout line.
        stdoutLine(str): a stdout line that is not JSON (summaries of `dataset mine`).
        stderrLine(str): a stderr line (messages, warnings, errors).
        finished(int, str, str): exit code, outcome ("ok", "interrupted", "failed", "killed") and the
            last stderr line (the error to show when the outcome is not "ok").
    """

    eventReceived = Signal(dict)
    stdoutLine = Signal(str)
    stderrLine = Signal(str)
    finished = Signal(int, str, str)

    def __init__(self, parent: QObject | None = None, kill_after_ms: int = 15000):
        super().__init__(parent)
        self.kill_after_ms = kill_after_ms
        self._process: QProcess | None = None
        self._out = LineBuffer()
        self._err = LineBuffer()
        self._last_error = ""
        self._stop_requested = False
        self._reported = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

    # ------------------------------------------------------------------ control
    def is_running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def command_line(self, args: list[str]) -> str:
        """The command as a shell would show it (for the log)."""
        program, arguments = cli_command(args)
        return shlex.join([program, *arguments])

    def start(self, args: list[str]) -> None:
        """Start `beauty-app ARGS`; output and the end arrive as signals (never blocks)."""
        if self.is_running():
            raise RuntimeError("a process is already running")
        self._out, self._err = LineBuffer(), LineBuffer()
        self._last_error = ""
        self._stop_requested = False
        self._reported = False
        process = QProcess(self)
        process.setProcessEnvironment(_child_environment())
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        program, arguments = cli_command(args)
        log.info("starting %s", shlex.join([program, *arguments]))
        process.start(program, arguments)

    def stop(self) -> None:
        """Ask the process to stop (SIGTERM: the trainer saves a resumable state); kill it if it lingers."""
        if not self.is_running():
            return
        self._stop_requested = True
        self._process.terminate()
        self._kill_timer.start(self.kill_after_ms)

    def stop_and_wait(self, grace_ms: int = 5000) -> None:
        """Stop the process and block until it is gone (closing the window); kills after `grace_ms`."""
        if not self.is_running():
            return
        process = self._process
        self._stop_requested = True
        process.terminate()
        if not process.waitForFinished(grace_ms):
            log.warning("the training process did not stop in %d ms; killing it", grace_ms)
            process.kill()
            process.waitForFinished(2000)

    # ------------------------------------------------------------------ output
    def _read_stdout(self) -> None:
        if self._process is None:
            return
        self._emit_stdout(self._out.feed(bytes(self._process.readAllStandardOutput().data())))

    def _read_stderr(self) -> None:
        if self._process is None:
            return
        self._emit_stderr(self._err.feed(bytes(self._process.readAllStandardError().data())))

    def _emit_stdout(self, lines: list[str]) -> None:
        for line in lines:
            event = None
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    event = None
            if isinstance(event, dict):
                self.eventReceived.emit(event)
            else:
                self.stdoutLine.emit(line)

    def _emit_stderr(self, lines: list[str]) -> None:
        for line in lines:
            self._last_error = line
            self.stderrLine.emit(line)

    def _drain(self) -> None:
        self._read_stdout()
        self._read_stderr()
        self._emit_stdout(self._out.flush())
        self._emit_stderr(self._err.flush())

    def _kill(self) -> None:
        if self.is_running():
            log.warning("the process did not stop after %d ms; killing it", self.kill_after_ms)
            self._process.kill()

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._drain()
        if exit_status == QProcess.ExitStatus.CrashExit:
            outcome = "killed" if self._stop_requested else "failed"
            if outcome == "failed" and not self._last_error:
                self._last_error = "The process crashed."
        elif exit_code == 0:
            outcome = "ok"
        elif exit_code == EXIT_INTERRUPTED:
            outcome = "interrupted"
        else:
            outcome = "failed"
        self._report(exit_code, outcome, self._last_error)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._kill_timer.stop()
            self._report(-1, "failed", f"Could not start {cli_command([])[0]}: {self._process.errorString()}.")

    def _report(self, exit_code: int, outcome: str, message: str) -> None:
        if self._reported:
            return
        self._reported = True
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self.finished.emit(exit_code, outcome, message)
