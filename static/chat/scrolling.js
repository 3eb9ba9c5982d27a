// Following the newest message: the conversation stays at the bottom while a reply grows,
// unless the reader scrolled up; then "Jump to latest" takes them back down.

const NEAR_BOTTOM_PX = 120;

export class FollowScroll {
  /** @param {HTMLElement} scroller  @param {HTMLButtonElement} jump */
  constructor(scroller, jump) {
    this.scroller = scroller;
    this.jump = jump;
    scroller.addEventListener("scroll", () => this.update(), { passive: true });
    jump.addEventListener("click", () => {
      this.toBottom();
      scroller.focus({ preventScroll: true }); // the button goes away: the focus stays in the chat
    });
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.update();
  }

  update() {
    this.jump.hidden = this.nearBottom();
  }
}
