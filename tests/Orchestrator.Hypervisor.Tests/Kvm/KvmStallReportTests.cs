// The stall report's classification, over hand-made samples: what a crawling accelerator, a hung guest and an exit
// storm each look like from the VMM (shared/notes/nested-kvm.md has the measured crawling case).
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class KvmStallReportTests
{
    // What QEMU's `info registers` showed on the nested host: the kernel's decompressor, 64-bit, paging on.
    private const ulong LongCr0 = 0x80050033;
    private const ulong LongCr4 = 0x20;
    private const ulong LongEfer = 0x500;

    [Fact]
    public void Registers_that_move_with_few_exits_read_as_crawling()
    {
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0x431b900, digest: 1, exits: Exits((KvmExit.KVM_EXIT_IO, 40)))],
            [Sample(0, ms: 200, rip: 0x431b9a8, digest: 2, exits: Exits((KvmExit.KVM_EXIT_IO, 41)))],
            [Sample(0, ms: 400, rip: 0x431b960, digest: 3, exits: Exits((KvmExit.KVM_EXIT_IO, 41)))],
        ]);

        Assert.Equal(KvmStallVerdict.Crawling, report.Verdict);
        Assert.Contains("vCPU 0", report.Reason);
        Assert.Contains("0x431b900 -> 0x431b960", report.Reason);
    }

    [Fact]
    public void A_loop_counter_that_changes_under_a_fixed_rip_is_progress_too()
    {
        // `dec ecx; jnz` sampled twice on the same instruction: only RCX tells it moved.
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0x1006, digest: 10)],
            [Sample(0, ms: 200, rip: 0x1006, digest: 11)],
        ]);

        Assert.Equal(KvmStallVerdict.Crawling, report.Verdict);
    }

    [Fact]
    public void Hlt_with_interrupts_off_is_hung_even_from_one_sample()
    {
        var report = KvmStallReport.Classify([[Sample(0, ms: 0, rip: 0xffffffff81001234, halted: true, interrupts: false)]]);

        Assert.Equal(KvmStallVerdict.Hung, report.Verdict);
        Assert.Contains("HLT with interrupts off at RIP 0xffffffff81001234", report.Reason);
    }

    [Fact]
    public void Registers_that_never_change_with_few_exits_are_hung()
    {
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0xffffffff81000100, digest: 7)],
            [Sample(0, ms: 200, rip: 0xffffffff81000100, digest: 7)],
            [Sample(0, ms: 400, rip: 0xffffffff81000100, digest: 7)],
        ]);

        Assert.Equal(KvmStallVerdict.Hung, report.Verdict);
        Assert.Contains("no progress", report.Reason);
        Assert.Contains("3 samples", report.Reason);
    }

    [Fact]
    public void Idle_in_hlt_with_interrupts_on_and_nothing_changing_is_hung_waiting()
    {
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0xffffffff81a00000, halted: true)],
            [Sample(0, ms: 200, rip: 0xffffffff81a00000, halted: true)],
        ]);

        Assert.Equal(KvmStallVerdict.Hung, report.Verdict);
        Assert.Contains("idle in HLT with interrupts on", report.Reason);
    }

    [Fact]
    public void Many_exits_with_rip_stuck_are_an_exit_storm_naming_the_exit()
    {
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0x9f00, digest: 1, exits: Exits((KvmExit.KVM_EXIT_IO, 1_000)))],
            [Sample(0, ms: 200, rip: 0x9f02, digest: 2, exits: Exits((KvmExit.KVM_EXIT_IO, 5_000), (KvmExit.KVM_EXIT_MMIO, 10)))],
            [Sample(0, ms: 400, rip: 0x9f00, digest: 3, exits: Exits((KvmExit.KVM_EXIT_IO, 9_000), (KvmExit.KVM_EXIT_MMIO, 20)))],
        ]);

        Assert.Equal(KvmStallVerdict.ExitStorm, report.Verdict);
        Assert.Contains("8020 guest exits in 400 ms (20050/s)", report.Reason);
        Assert.Contains("mostly KVM_EXIT_IO 8000", report.Reason);
    }

    [Fact]
    public void Many_exits_with_rip_moving_widely_are_not_called_a_storm()
    {
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0x1000, exits: Exits((KvmExit.KVM_EXIT_IO, 0)))],
            [Sample(0, ms: 200, rip: 0x2000, exits: Exits((KvmExit.KVM_EXIT_IO, 4_000)))],
            [Sample(0, ms: 400, rip: 0x3000, exits: Exits((KvmExit.KVM_EXIT_IO, 8_000)))],
        ]);

        Assert.Equal(KvmStallVerdict.Unknown, report.Verdict);
        Assert.Contains("busy", report.Reason);
    }

    [Fact]
    public void The_vmms_own_kicks_are_not_guest_exits()
    {
        // KVM_EXIT_INTR is the engine kicking the vCPU (pause, halt probe, these very samples): no storm.
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0x5000, exits: Exits((KvmExit.KVM_EXIT_INTR, 0)))],
            [Sample(0, ms: 200, rip: 0x5000, exits: Exits((KvmExit.KVM_EXIT_INTR, 50_000)))],
        ]);

        Assert.Equal(KvmStallVerdict.Hung, report.Verdict);
        Assert.Contains("0 guest exits", report.Reason);
    }

    [Fact]
    public void A_vcpu_stuck_inside_run_is_hung_and_one_that_ended_says_nothing()
    {
        var stuck = KvmStallReport.Classify([[Unanswered(0, VcpuState.Running, "did not leave KVM_RUN within 2000 ms of a kick")]]);
        Assert.Equal(KvmStallVerdict.Hung, stuck.Verdict);
        Assert.Contains("did not leave KVM_RUN", stuck.Reason);

        var ended = KvmStallReport.Classify([[Unanswered(0, VcpuState.Failed, "vCPU 0 has ended (KVM_EXIT_INTERNAL_ERROR)")]]);
        Assert.Equal(KvmStallVerdict.Unknown, ended.Verdict);
        Assert.Contains("ended", ended.Reason);
    }

    [Fact]
    public void One_sample_of_a_running_vcpu_cannot_tell_progress()
    {
        var report = KvmStallReport.Classify([[Sample(0, ms: 0, rip: 0x1000)]]);

        Assert.Equal(KvmStallVerdict.Unknown, report.Verdict);
        Assert.Contains("one sample", report.Reason);
    }

    [Fact]
    public void A_paused_vcpu_is_not_judged()
    {
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0x1000, state: VcpuState.Paused)],
            [Sample(0, ms: 200, rip: 0x1000, state: VcpuState.Paused)],
        ]);

        Assert.Equal(KvmStallVerdict.Unknown, report.Verdict);
        Assert.Contains("paused", report.Reason);
    }

    [Fact]
    public void The_vm_takes_the_most_telling_vcpu_and_never_started_aps_do_not_count()
    {
        // vCPU 0 crawls, vCPU 1 storms, vCPU 2 was never started by the guest: a storm says the most.
        var report = KvmStallReport.Classify(
        [
            [
                Sample(0, ms: 0, rip: 0x1000, digest: 1),
                Sample(1, ms: 0, rip: 0x2000, exits: Exits((KvmExit.KVM_EXIT_MMIO, 0))),
                Sample(2, ms: 0, rip: 0xfff0, mpState: KvmExit.KVM_MP_STATE_UNINITIALIZED),
            ],
            [
                Sample(0, ms: 300, rip: 0x1100, digest: 2),
                Sample(1, ms: 300, rip: 0x2000, exits: Exits((KvmExit.KVM_EXIT_MMIO, 3_000))),
                Sample(2, ms: 300, rip: 0xfff0, mpState: KvmExit.KVM_MP_STATE_UNINITIALIZED),
            ],
        ]);

        Assert.Equal(KvmStallVerdict.ExitStorm, report.Verdict);
        Assert.StartsWith("vCPU 1:", report.Reason);
        Assert.Equal(
            [KvmStallVerdict.Crawling, KvmStallVerdict.ExitStorm, KvmStallVerdict.Unknown],
            report.Vcpus.Select(v => v.Verdict));
        Assert.Contains("never started", report.Vcpus[2].Reason);

        // Without the storm, the crawling boot processor decides; an AP idle in HLT does not make the VM hung.
        var crawling = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0x1000, digest: 1), Sample(1, ms: 0, rip: 0x2000, halted: true)],
            [Sample(0, ms: 300, rip: 0x1100, digest: 2), Sample(1, ms: 300, rip: 0x2000, halted: true)],
        ]);
        Assert.Equal(KvmStallVerdict.Crawling, crawling.Verdict);
    }

    [Fact]
    public void Describe_is_one_line_with_the_verdict_registers_mode_and_exits()
    {
        var report = KvmStallReport.Classify(
        [
            [Sample(0, ms: 0, rip: 0x431b900, digest: 1, exits: Exits((KvmExit.KVM_EXIT_IO, 10), (KvmExit.KVM_EXIT_INTR, 3)))],
            [Sample(0, ms: 500, rip: 0x431b9f0, digest: 2, exits: Exits((KvmExit.KVM_EXIT_IO, 12), (KvmExit.KVM_EXIT_INTR, 4)), inRunMs: 495)],
        ]);

        var line = report.Describe();
        Assert.DoesNotContain('\n', line);
        Assert.StartsWith("crawling (vCPU 0: registers move", line);
        Assert.Contains("vcpu0 rip=0x431b9f0 long CR0=0x80050033 CR4=0x20 EFER=0x500 IF=1 runnable", line);
        Assert.Contains("over 500 ms: KVM_EXIT_IO 2, KVM_EXIT_INTR 1, 99% in KVM_RUN", line);
        Assert.Contains("since start: 16 runs, KVM_EXIT_IO 12, KVM_EXIT_INTR 4", line);
    }

    [Fact]
    public void Mode_comes_from_cr0_and_efer()
    {
        Assert.Equal("real", Registers(cr0: 0x10, efer: 0).Mode);
        Assert.Equal("protected", Registers(cr0: 0x11, efer: 0).Mode);
        Assert.Equal("paged", Registers(cr0: 0x80000011, efer: 0).Mode);
        Assert.Equal("long", Registers(cr0: LongCr0, efer: LongEfer).Mode);
        Assert.Equal("paged", Registers(cr0: 0x80000011, efer: 0x100).Mode); // LME set, LMA not yet: still 32-bit
    }

    [Fact]
    public void Exit_counters_bucket_unknown_reasons_and_leave_kicks_out_of_guest_exits()
    {
        var exits = Exits((KvmExit.KVM_EXIT_IO, 5), (KvmExit.KVM_EXIT_INTR, 7), (200, 2), (63, 1));

        Assert.Equal(63, KvmExitCounters.Bucket(200));
        Assert.Equal(3, exits[999]);
        Assert.Equal(8, exits.GuestExits);
        Assert.Equal("KVM_EXIT_INTR 7, KVM_EXIT_IO 5, exit reason 63+ 3", exits.Describe());
        Assert.Equal("no exits", KvmExitCounters.None.Describe());
    }

    [Fact]
    public void The_register_digest_sees_any_general_register_change()
    {
        var registers = new ulong[16];
        var before = KvmVcpuRegisters.Digest(registers);
        registers[2] = 999_999; // RCX, the loop counter
        Assert.NotEqual(before, KvmVcpuRegisters.Digest(registers));
        Assert.Equal(KvmVcpuRegisters.Digest(registers), KvmVcpuRegisters.Digest(registers.ToArray()));
    }

    private static KvmExitCounters Exits(params (uint Reason, long Count)[] counts) => Exits(0, counts);

    private static KvmExitCounters Exits(double inRunMs, params (uint Reason, long Count)[] counts)
    {
        var byReason = new long[KvmExitCounters.Buckets];
        foreach (var (reason, count) in counts)
        {
            byReason[KvmExitCounters.Bucket(reason)] += count;
        }

        return new KvmExitCounters(byReason.Sum(), TimeSpan.FromMilliseconds(inRunMs), byReason);
    }

    private static KvmVcpuRegisters Registers(ulong cr0 = LongCr0, ulong efer = LongEfer, ulong rip = 0, ulong digest = 0,
        bool halted = false, bool interrupts = true, uint? mpState = null) =>
        new(rip, interrupts ? 0x202ul : 0x2ul, cr0, LongCr4, efer,
            mpState ?? (halted ? KvmExit.KVM_MP_STATE_HALTED : KvmExit.KVM_MP_STATE_RUNNABLE), digest);

    private static KvmVcpuSample Sample(int index, double ms, ulong rip, ulong digest = 0, bool halted = false, bool interrupts = true,
        KvmExitCounters? exits = null, uint? mpState = null, VcpuState state = VcpuState.Running, double inRunMs = 0)
    {
        exits ??= KvmExitCounters.None;
        if (inRunMs > 0)
        {
            exits = exits with { InKvmRun = TimeSpan.FromMilliseconds(inRunMs) };
        }

        return new KvmVcpuSample(index, TimeSpan.FromMilliseconds(ms), state,
            Registers(rip: rip, digest: digest, halted: halted, interrupts: interrupts, mpState: mpState), exits);
    }

    private static KvmVcpuSample Unanswered(int index, VcpuState state, string note) =>
        new(index, TimeSpan.Zero, state, null, KvmExitCounters.None, note);
}
