// The composer: the message box, Send and Stop.
//
// Enter sends and Shift+Enter breaks the line, on a keyboard. On a touch screen Enter
// breaks the line (as on every phone chat app) and the hint saying otherwise is not shown.
// While a reply is written Stop takes Send's place; Enter then keeps the text and says
// quietly that it waits for the reply (Esc stops it: shortcuts.js). ↑ in the empty box
// edits the last message you typed (versions.js).

const TOUCH = window.matchMedia("(pointer: coarse)");

export class Composer {
  /**
   * @param {object} parts  form, input, send, stop, hint, status (elements)
   * @param {object} on     submit(text): true if it was taken; stop(); editLast(): true if an editor opened;
   *                        files(): {count, busy} of
   *                        the attachments waiting to go with it (attachments.js)
   */
  constructor({ form, input, send, stop, hint, status }, on) {
    Object.assign(this, { form, input, sendButton: send, stopButton: stop, hint, status });
    this.on = on;
    this.state = "idle";
    this.outgoing = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => {
      // Enter while composing (IME) is the IME's.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !TOUCH.matches) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "ArrowUp" && !input.value && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
        if (this.on.editLast()) event.preventDefault();
      }
    });
    input.addEventListener("input", () => this.autosize());
    stop.addEventListener("click", () => this.stop());
    const describe = () => {
      this.hint.hidden = TOUCH.matches;
      if (TOUCH.matches) input.removeAttribute("aria-describedby");
      else input.setAttribute("aria-describedby", this.hint.id);
    };
    TOUCH.addEventListener("change", describe);
    describe();
  }

  submit() {
    const text = this.input.value;
    const files = this.on.files ? this.on.files() : { count: 0, busy: false };
    if (!text.trim() && !files.count && !files.busy) return;
    if (this.state === "running") {
      this.status.textContent = "The assistant is still replying: your message waits here until it is done. Esc stops the reply.";
      return;
    }
    if (files.busy) {
      this.status.textContent = "Your files are still uploading: the message goes once they are up.";
      return;
    }
    if (this.on.submit(text)) {
      this.input.value = "";
      this.autosize();
    }
  }

  stop() {
    if (this.state !== "running") return;
    this.on.stop();
    this.stopButton.disabled = true;
    this.stopButton.textContent = "Stopping…";
  }

  /** The chat's run state (idle, running, awaiting_input, failed) and whether a message is on its way. */
  setState(state, { outgoing }) {
    const wasRunning = this.state === "running";
    this.state = state;
    this.outgoing = outgoing;
    const running = state === "running";
    // Stop takes Send's place; the focus moves with it rather than to the page.
    const hadFocus = document.activeElement === (running ? this.sendButton : this.stopButton);
    this.stopButton.hidden = !running;
    this.sendButton.hidden = running;
    this.stopButton.disabled = false;
    this.stopButton.textContent = "Stop";
    this.sendButton.disabled = outgoing;
    if (hadFocus) (running ? this.stopButton : this.sendButton).focus();
    if (wasRunning && !running) this.status.textContent = "";
    this.input.placeholder = state === "awaiting_input" ? "Or type an answer" : "Message the assistant";
  }

  /** A quiet word in the status line (not an error): cleared when a reply ends. */
  say(text) {
    this.status.textContent = text;
  }

  /** Text that was not sent after all: back in the box, unless something new was typed. */
  restoreDraft(text) {
    if (!this.input.value) this.input.value = text;
    this.autosize();
  }

  focus() {
    this.input.focus();
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }
}
