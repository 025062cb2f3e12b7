"""The turn policy: which calls a turn makes and keeps, the same for every engine that parses calls.

An engine is a transport — tokens (llama.cpp) or completions (a remote server) in, events out. At a few
points it asks its :class:`TurnGate` what to do, and carries the answer out its own way:

* at the first token, with ``auto``: call or answer (:meth:`TurnGate.decide`), from the model's
  probability of opening a call;
* when the model opens a call after some text, or the call is decided: the engine writes it under the
  grammar, and the gate may *hold* it (:meth:`TurnGate.hold`) until it is whole;
* when a held call is whole: keep it, ask the model about it (local engines only), answer in text from
  a prompt without the tools, or end the turn before it (:meth:`TurnGate.judge`);
* after a call: write another, try one more (held), or end the turn (:meth:`TurnGate.after_call`);
* at the end: a turn whose every call repeated one already answered is answered without tools
  (:attr:`TurnGate.only_repeats`).

Events go out through :meth:`TurnGate.events`, which holds what must wait and drops repeats.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

from ..._grounding import conversation_text
from ..._wire import Event, IndexedToolCall
from .._base import GenerationRequest
from ._judgment import first_call_fits, further_call_kept, named_and_said, required_values_said
from ._policy import CallPolicy
from ._repeats import RepeatCheck


class Verdict(enum.Enum):
    """What becomes of a held call once it is whole."""

    KEEP = "keep"  # it goes out
    ASK = "ask"  # ask the model whether the tool was made for the request, then :meth:`TurnGate.answer`
    ANSWER_IN_TEXT = "answer_in_text"  # not a call for this request: answer from a prompt without tools
    END_BEFORE = "end_before"  # the turn ends before it (a further call, or a first one after text)


class Next(enum.Enum):
    """What follows a call that closed."""

    WRITE_ON = "write_on"  # nothing to decide: the model goes on as it likes
    ANOTHER = "another"  # decided: another call (the end of the turn is forbidden)
    TRY = "try"  # let it try one more, held until judged (the end of the turn is forbidden)
    DONE = "done"  # the turn ends


class TurnGate:
    """One turn's decisions under a :class:`CallPolicy` (see the module doc).

    ``reads_logits``: the engine sees the model's whole next-token distribution whenever it asks (a local
    engine), so it can decide after each call and ask the relevance question; a remote engine sees only
    the first token's top candidates. ``hold_each_call``: the engine cannot stop at each call (a remote
    completion may hold several), so the gate holds every call it must judge from its first event.
    """

    def __init__(
        self, policy: CallPolicy, request: GenerationRequest, *, reads_logits: bool, hold_each_call: bool = False
    ) -> None:
        self.policy = policy
        self.hold_each_call = hold_each_call
        self.ask_threshold: float | None = None
        #: The held first call was kept without asking: the user named its tool and said its values.
        self.kept_named = False
        self.request = request
        watching = request.uses_tools and not request.must_call
        #: Decide at the first token whether this turn calls (``auto`` with a threshold).
        self.deciding = watching and policy.call_threshold > 0
        self._deciding_more = reads_logits and request.may_add_calls and policy.another_call_threshold > 0
        self._trying = request.may_add_calls and policy.try_another_call
        self._checking_first = watching and policy.check_relevance
        self._asking = reads_logits and policy.ask_relevance > 0
        self.repeats = RepeatCheck(request)
        self._grounding: str | None = None
        self._held: list[Event] | None = None
        self._held_first = False
        #: Calls of this turn that passed the gate's judgement (repeats included: they count as asked).
        self.turn_calls: list[IndexedToolCall] = []
        #: Calls that went out.
        self.sent_calls: list[IndexedToolCall] = []
        self.dropped_repeats = 0
        self.text_sent = False

    # ---------------------------------------------------------------- deciding

    def decide(self, opener_mass: float) -> bool:
        """At the first token: whether the turn calls, from the model's probability of opening a call."""
        self.deciding = False
        return opener_mass >= self.policy.call_threshold

    @property
    def holds_first(self) -> bool:
        """Whether the turn's first call is held until it is whole and judged."""
        return self._checking_first and not self.turn_calls

    @property
    def watches_calls(self) -> bool:
        """Whether the engine must stop at each closed call to ask :meth:`judge` / :meth:`after_call`."""
        return self._deciding_more or self._trying or self.holding

    def after_call(self, go_on_share: Callable[[], float]) -> Next:
        """After a call closed (and was kept): what the turn does next. ``go_on_share`` reads the model's
        share of going on to another call against ending the turn (asked only when it decides that)."""
        if not (self._deciding_more or self._trying):
            return Next.WRITE_ON
        if self._deciding_more and go_on_share() >= self.policy.another_call_threshold:
            return Next.ANOTHER
        if self._trying:
            self.hold(first=False)
            return Next.TRY
        return Next.DONE

    # ---------------------------------------------------------------- holding

    @property
    def holding(self) -> bool:
        return self._held is not None

    def hold(self, *, first: bool) -> None:
        """Hold what comes next until :meth:`judge`: the turn's first call, or one tried after it."""
        self._held = []
        self._held_first = first

    def events(self, events: Iterable[Event]) -> list[Event]:
        """The events that go out now (see the module doc). With ``hold_each_call`` (engines that get
        several calls from one completion), every call the policy checks is held from its first event;
        once a call was answered in this turn, argument fragments wait for the whole call (it may be a
        repeat), and repeats are dropped."""
        out: list[Event] = []
        for event in events:
            is_call = "tool_call_delta" in event or "tool_calls" in event
            if self._held is None and is_call and self.hold_each_call and self._checks_next_call:
                self.hold(first=not self.turn_calls)
            if self._held is not None:
                self._held.append(event)
                continue
            if "tool_call_delta" in event and self.repeats:
                continue
            if "tool_calls" in event:
                out.extend(self._send_calls(event["tool_calls"]))
                continue
            self.text_sent = self.text_sent or bool(event.get("response"))
            out.append(event)
        return out

    @property
    def _checks_next_call(self) -> bool:
        return self._checking_first if not self.turn_calls else self._trying

    def _send_calls(self, calls: list[IndexedToolCall]) -> list[Event]:
        self.turn_calls.extend(calls)
        kept = []
        for call in calls:
            if self.repeats.is_repeat(call):
                self.dropped_repeats += 1
            else:
                kept.append(call)
        self.sent_calls.extend(kept)
        return [{"tool_calls": kept}] if kept else []

    @property
    def held_call(self) -> IndexedToolCall | None:
        """The held call, once it is whole."""
        for event in self._held or ():
            if "tool_calls" in event:
                return event["tool_calls"][0]
        return None

    def judge(self, *, after_text: bool) -> Verdict:
        """The held call is whole: what becomes of it (``after_text``: the model wrote text before it).

        The turn's first call is kept if it fits the request (and, asked, the model agrees); a further one
        if it is new and grounded (:mod:`._judgment`)."""
        call = self.held_call
        assert call is not None
        self.kept_named = False
        if not self._held_first:
            if self._grounding is None:
                self._grounding = conversation_text(self.request.messages)
            if further_call_kept(call, self.turn_calls, self.request, self._grounding):
                return Verdict.KEEP
        elif first_call_fits(call, self.request):
            if self._asking:
                self.ask_threshold = self._question_threshold(call)
                if self.ask_threshold is not None:
                    return Verdict.ASK
            return Verdict.KEEP
        return self._not_kept(after_text)

    def _not_kept(self, after_text: bool) -> Verdict:
        return Verdict.ANSWER_IN_TEXT if self._held_first and not after_text else Verdict.END_BEFORE

    def _question_threshold(self, call: IndexedToolCall) -> float | None:
        """The share of "yes" the first call needs when the model is asked (None: kept unasked — its tool
        named by the user, with every required value said)."""
        if self._grounding is None:
            self._grounding = conversation_text(self.request.messages)
        if named_and_said(call, self.request, self._grounding):
            self.kept_named = True
            return None
        threshold = self.policy.ask_relevance
        unsaid = self.policy.ask_relevance_unsaid
        if unsaid > threshold and not required_values_said(call, self.request, self._grounding):
            threshold = unsaid
        return threshold

    def answer(self, yes_share: float, *, after_text: bool) -> Verdict:
        """The model's share of "yes" to the relevance question about the held first call (after ASK)."""
        assert self.ask_threshold is not None
        return Verdict.KEEP if yes_share >= self.ask_threshold else self._not_kept(after_text)

    def release(self) -> list[Event]:
        """The held call is kept: the events up to it go out, and what followed it passes the gate again."""
        held, self._held = self._held or [], None
        end = next(i for i, event in enumerate(held) if "tool_calls" in event) + 1
        return self._unheld(held[:end]) + self.events(held[end:])

    def flush(self) -> list[Event]:
        """The output ended inside a held call that never became whole: what was held goes out as it is."""
        held, self._held = self._held or [], None
        return self._unheld(held)

    def _unheld(self, events: list[Event]) -> list[Event]:
        """``events`` through the gate without holding them again."""
        holding_each, self.hold_each_call = self.hold_each_call, False
        try:
            return self.events(events)
        finally:
            self.hold_each_call = holding_each

    def discard(self) -> list[Event]:
        """The held call is not kept: forget it and what followed; returns what was held before it, which is
        text written before a call in the same completion (it goes out: the turn ends after it)."""
        held, self._held = self._held or [], None
        before = next((i for i, event in enumerate(held) if "tool_call_delta" in event or "tool_calls" in event), 0)
        return self.events(held[:before])

    # ---------------------------------------------------------------- ending

    @property
    def only_repeats(self) -> bool:
        """Every call of the turn repeated one already answered: answer without tools instead."""
        return self.dropped_repeats > 0 and not self.sent_calls


__all__ = ["Next", "TurnGate", "Verdict"]
