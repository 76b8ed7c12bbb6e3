"""Stage 2, script & voice: the script, the voiceover and its word timings (issue 5).

- compose / generate: the spec's `script` as written; otherwise one written from topic and
  tone (an OpenAI-compatible LLM when configured, else the offline templates), sized to
  the target length. The video is as long as its voiceover.
- fetch / upload: the voice opens and closes the clip (a hook from the topic, a call to
  action; a spec `script`'s first paragraph and the rest), never over the source's speech
  (issue 12): before or after it, in a real pause, or over a held first or last frame.
The voice track of fetch/upload jobs spans the whole video, so render can mix it as is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.errors import StageError
from afx.spec.job import Job
from afx.stages.base import StageContext, pick

log = logging.getLogger("afx.script")
SHORT_LIMIT = 60.0
DEFAULT_SECONDS = {"short": 30.0}
TAIL = 0.6  # seconds of quiet after the last word of a composed video


def spoken_seconds(job: Job) -> float:
    opts = job.get("render") or {}
    if "seconds" in opts:
        return float(opts["seconds"])
    return DEFAULT_SECONDS.get(job.get("format", "short"), float(job.get("durationMins", 1)) * 60)


def limit_seconds(job: Job) -> float:
    return SHORT_LIMIT if job.get("format", "short") == "short" else float(job.get("durationMins", 1)) * 60 * 1.1


class ScriptStage:
    name = "script"
    version = "7"
    after: tuple[str, ...] = ("edit",)

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "topic", "tone", "script", "format", "durationMins", "render.voice",
                    "render.seconds")

    def files(self, job: Job) -> Mapping[str, Path]:
        return {}

    def settings(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        from afx.media import llm

        cfg = llm.config_from(config)
        return {"llm": cfg.fingerprint() if cfg else None}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        if ctx.job.get("entry") in ("compose", "generate"):
            return self._narration(ctx)
        return self._bookends(ctx)

    # -- compose / generate ---------------------------------------------------------------
    def _narration(self, ctx: StageContext) -> dict[str, Any]:
        from afx.media.tts import Synthesis, speakable, tone_voice

        job = ctx.job
        tone = tone_voice(job.get("tone"))
        limit = limit_seconds(job)
        # aimed a little under the format's limit: voices do not keep the estimated pace exactly
        text, written_by, note = self._text(ctx, min(spoken_seconds(job), limit * 0.95) - TAIL, bookends=False)
        words = len(speakable(text).split())
        if words == 0:
            raise StageError("the script has no words to speak")
        estimate = words / tone.words_per_second
        if estimate > limit * 1.15:
            fits = int(limit * tone.words_per_second)
            raise StageError(f"the script is {words} words, about {estimate:.0f} s of speech at the "
                             f"{job.get('tone') or 'default'} pace; a {job.get('format', 'short')} of "
                             f"{limit:.0f} s holds about {fits} words: shorten the script or use format: long")
        voice = (job.get("render") or {}).get("voice")
        ctx.output("script.txt", export="script.txt").write_text(text + "\n", encoding="utf-8")
        if voice == "none":
            timed = _paced(text, tone.words_per_second)
            seconds = (timed[-1]["end"] if timed else 0.0) + TAIL
            ctx.output("words.json").write_text(json.dumps(timed))
            return {"words": words, "written_by": written_by, "voice": None, "seconds": round(seconds, 3), **note}

        def speak(text: str) -> Synthesis:
            synth = Synthesis(voice, job.get("tone"))
            synth.silence(0.25)
            synth.say(text, lambda f: ctx.progress(f, "voice"))
            synth.silence(TAIL)
            return synth

        synth = speak(text)
        if synth.seconds > limit and written_by != "spec":
            # afx wrote it, so afx shortens it: whole sentences out of the body (never the
            # opening or the call to action), as many as the overshoot needs, then once more
            # if the voice still runs long.
            fixed = 0.25 + TAIL  # the silences around the words
            for _ in range(3):
                shorter = shorten(text, (limit - 0.5 - fixed) / max(synth.seconds - fixed, 0.1))
                if shorter is None:
                    break
                text, synth = shorter, speak(shorter)
                note["shortened_to_fit"] = True
                if synth.seconds <= limit:
                    break
            words = len(speakable(text).split())
            ctx.output("script.txt", export="script.txt").write_text(text + "\n", encoding="utf-8")
        if synth.seconds > limit:
            raise StageError(f"the voiceover is {synth.seconds:.1f} s, over the {limit:.0f} s a "
                             f"{job.get('format', 'short')} allows: shorten the script")
        synth.write(ctx.output("voice.wav"))
        ctx.output("words.json").write_text(json.dumps([w.to_dict() for w in synth.words]))
        return {"words": words, "written_by": written_by, "voice": synth.voice_name, "engine": synth.engine,
                "seconds": round(synth.seconds, 3), **note}

    # -- fetch / upload -------------------------------------------------------------------
    def _bookends(self, ctx: StageContext) -> dict[str, Any]:
        """The voice opens and closes the clip, and never talks over the source's speech: the
        hook before the first word or over a held opening frame, the call to action after the
        last word, in a real pause or over a held last frame; what has no room is left out,
        with a warning (afx.media.speech.place). The voice track and its words are on the
        video's final timeline; render holds the frames `preroll` / `postroll` say."""
        from afx.media.speech import place
        from afx.media.tts import Synthesis, Word

        job = ctx.job
        seconds = float(ctx.inputs["edit"].meta.get("seconds", 0.0))
        voice = (job.get("render") or {}).get("voice")
        text, written_by, note = self._text(ctx, seconds, bookends=True)
        ctx.output("script.txt", export="script.txt").write_text(text + "\n", encoding="utf-8")
        if voice == "none" or seconds <= 0:
            ctx.output("words.json").write_text("[]")
            return {"words": len(text.split()), "written_by": written_by, "voice": None, "seconds": seconds,
                    "preroll": 0.0, "postroll": 0.0, **note}
        parts = [p for p in text.split("\n\n") if p.strip()]
        opening = Synthesis(voice, job.get("tone"))
        opening.say(parts[0])
        closing = None
        if len(parts) > 1:
            closing = Synthesis(voice, job.get("tone"))
            closing.say(" ".join(parts[1:]))
        heard = [Word(**w) for w in json.loads(ctx.inputs["edit"].path("transcript.json").read_text())]
        spot = place(opening.seconds, closing.seconds if closing else 0.0, heard, seconds, limit_seconds(job))
        for why in spot.notes:
            (log.warning if why.startswith("no room") else log.info)("%s: %s", job.name, why)
        track = Synthesis(voice, job.get("tone"))
        said = []
        for at, part, label in ((spot.hook_at, opening, "hook"), (spot.cta_at, closing, "call to action")):
            if at is None or part is None:
                continue
            track.silence(at - track.seconds)
            offset = track.seconds
            track.samples.extend(part.samples)
            track.words.extend(Word(w.text, round(w.start + offset, 3), round(w.end + offset, 3)) for w in part.words)
            said.append(label)
        total = round(seconds + spot.extra, 3)
        track.silence(total - track.seconds)
        track.write(ctx.output("voice.wav"))
        ctx.output("words.json").write_text(json.dumps([w.to_dict() for w in track.words]))
        return {"words": len(track.words), "written_by": written_by, "voice": track.voice_name,
                "engine": track.engine, "seconds": total, "preroll": spot.preroll, "postroll": spot.postroll,
                "said": said, "placement": spot.notes, **note}

    # -- text -----------------------------------------------------------------------------
    def _text(self, ctx: StageContext, seconds: float, *, bookends: bool) -> tuple[str, str, dict[str, Any]]:
        from afx.media import llm
        from afx.media import script as writer
        from afx.media.tts import tone_voice

        job = ctx.job
        if job.get("script"):
            return job["script"].strip(), "spec", {}
        heard: list[str] = []
        edit = ctx.inputs.get("edit")
        if edit is not None and "transcript.json" in edit.files:
            heard = [w["text"] for w in json.loads(edit.path("transcript.json").read_text())]
        tone = tone_voice(job.get("tone"))
        topic = job.get("topic") or ""
        cfg = llm.config_from(dict(ctx.config))
        if cfg is not None and not bookends:
            try:
                return llm.write_script(cfg, topic, job.get("tone") or "", int(seconds * tone.words_per_second),
                                        " ".join(heard)[:2000]), "llm", {"llm": cfg.model}
            except llm.LLMError as exc:
                log.warning("script writer %s failed (%s): using the offline templates", cfg.model, exc)
                note: dict[str, Any] = {"llm_error": str(exc)}
        else:
            note = {}
        script = writer.write(topic, job.get("tone"), seconds, tone.words_per_second, bookends_only=bookends)
        if script.short_by >= 5:
            have = seconds - script.short_by
            log.warning("%s: the offline script writer has about %.0f s of lines for this tone, not the %.0f s "
                        "asked for (it never repeats a line): the video is that much shorter. For long-form, give "
                        "the job a `script`, or set an LLM in afx.yaml (script.llm)", job.name, have, seconds)
            note["script_short_by"] = round(script.short_by, 1)
        return script.text, "templates", note


def shorten(text: str, keep: float) -> str | None:
    """The text with body sentences dropped, from the end of the body, until at most `keep`
    (a fraction) of its words are left; the first and last sentences always stay. None when
    there is nothing to drop."""
    from afx.media.tts import sentences

    parts = sentences(text)
    if len(parts) <= 3:
        return None
    total = sum(len(p.split()) for p in parts)
    body = parts[1:-1]
    while body and sum(len(p.split()) for p in [parts[0], *body, parts[-1]]) > keep * total:
        body.pop()
    if not body:
        body = parts[1:2]  # the shortest script afx writes: opening, one point, call to action
    return " ".join([parts[0], *body, parts[-1]])


def _paced(text: str, wps: float) -> list[dict[str, Any]]:
    """Word times at the tone's pace, for a video without a voice (captions only)."""
    from afx.media.tts import sentences, speakable

    out, t = [], 0.25
    for sentence in sentences(speakable(text)):
        for word in sentence.split():
            d = max(len(word), 2) / (5.5 * wps)
            out.append({"text": word, "start": round(t, 3), "end": round(t + d, 3)})
            t += d + 0.04
        t += 0.35
    return out
