/*
 * rt_ctx_switch(struct rt_ctx *from, struct rt_ctx *to)
 *
 * Saves the System V callee-saved registers and the SSE/x87 control words on
 * the current stack, stores the stack pointer in from->sp, loads to->sp and
 * restores the same set from there. Unlike swapcontext it makes no system
 * call (the signal mask belongs to the thread, not to the coroutine), which
 * is what makes an actor switch cost nanoseconds instead of a syscall.
 *
 * Frame layout (from the saved sp upward):
 *   0: mxcsr (4 bytes), 4: x87 control word (2 bytes), 8: r15, 16: r14,
 *   24: r13, 32: r12, 40: rbx, 48: rbp, 56: return address
 * stack.c builds the same layout on a fresh stack made by makecontext.
 */
    .text
    .globl rt_ctx_switch
    .hidden rt_ctx_switch
    .type rt_ctx_switch, @function
    .p2align 4
rt_ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movl (%rsp), %eax
    movzwl 4(%rsp), %ecx
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    /* Load the control words only when the other side's differ (an actor
     * changed its rounding or exception mask): ldmxcsr and fldcw wait for
     * their operand and hold back what follows, and the operand is the
     * first word of a stack that has usually left the cache, while a
     * compare and a predicted branch let the loads below overlap. */
    cmpl (%rsp), %eax
    jne 2f
1:  cmpw 4(%rsp), %cx
    jne 3f
4:  addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
2:  ldmxcsr (%rsp)
    jmp 1b
3:  fldcw 4(%rsp)
    jmp 4b
    .cfi_endproc
    .size rt_ctx_switch, .-rt_ctx_switch

    .section .note.GNU-stack, "", @progbits
