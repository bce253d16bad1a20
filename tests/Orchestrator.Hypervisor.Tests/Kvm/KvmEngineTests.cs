// The engine on a real /dev/kvm: the real-mode smoke guest, then the demo Linux image through the 64-bit boot protocol,
// with the vCPU protocol and the power-off path. Skipped, with the reason, where /dev/kvm is missing (CI).
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

[Collection(KvmCollection.Name)]
public sealed class KvmEngineTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [KvmFact]
    public async Task Real_mode_guest_prints_OK_on_the_serial_port_and_halts()
    {
        await using var driver = Driver();
        var vm = await driver.StartProbeGuestAsync(CancellationToken.None);
        var events = new EventRecorder(vm);

        await events.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text == RealModeGuest.Output, "OK from the real-mode guest");
        var exited = await events.WaitForExitAsync();
        Assert.Contains("guest-halt", exited.Reason);
        Assert.IsType<VmEvent.Exited>(events.Events[^1]);
        Assert.Equal("OK\n", await File.ReadAllTextAsync(vm.ConsoleLogPath));
    }

    [KvmFact]
    public async Task Demo_image_boots_to_its_banner_with_the_name_from_its_initramfs()
    {
        var image = await DemoImage.GetAsync();
        await using var driver = Driver();
        var vm = await driver.StartAsync(Specs.For(image, "kvm-banner"), CancellationToken.None);
        var events = new EventRecorder(vm);

        await events.WaitForBannerAsync("kvm-banner");
        var vcpus = await vm.QueryVcpusAsync(CancellationToken.None);
        Assert.Single(vcpus);
        Assert.True(Directory.Exists($"/proc/{Environment.ProcessId}/task/{vcpus[0].ThreadId}"), "the vCPU is not a thread of this process");

        await vm.KillAsync(CancellationToken.None);
        Assert.Equal("killed", (await events.WaitForExitAsync()).Reason);
    }

    [KvmFact]
    public async Task Pause_and_resume_are_acknowledged_by_every_vcpu_and_reported()
    {
        var image = await DemoImage.GetAsync();
        await using var driver = Driver();
        var vm = await driver.StartAsync(Specs.For(image, "kvm-pause", vcpus: 2), CancellationToken.None);
        var events = new EventRecorder(vm);
        await events.WaitForBannerAsync("kvm-pause");
        var vcpus = ((IVcpuHost)vm).Vcpus;

        await vm.PauseAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.All(vcpus, v => Assert.Equal(VcpuState.Paused, v.State));
        await events.WaitForAsync<VmEvent.Stopped>(_ => true, "the Stopped event");

        await vm.ResumeAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.All(vcpus, v => Assert.Equal(VcpuState.Running, v.State));
        await events.WaitForAsync<VmEvent.Resumed>(_ => true, "the Resumed event");
        Assert.All(vcpus, v => Assert.True(v.Counters.Kicks >= 1, $"vCPU {v.Index} was never kicked"));

        // One vCPU alone: Stop is acknowledged once its thread has left KVM_RUN for good.
        await vcpus[1].StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(VcpuEndKind.Stopped, (await vcpus[1].Completion).Kind);

        await vm.KillAsync(CancellationToken.None);
        await events.WaitForExitAsync();
    }

    [KvmFact]
    public async Task A_stall_report_reads_every_vcpu_on_its_thread_and_leaves_the_vm_running_without_events()
    {
        var image = await DemoImage.GetAsync();
        await using var driver = Driver();
        var vm = await driver.StartAsync(Specs.For(image, "kvm-stall", vcpus: 2), CancellationToken.None);
        var events = new EventRecorder(vm);
        await events.WaitForBannerAsync("kvm-stall");
        var vcpus = ((IVcpuHost)vm).Vcpus;

        var report = await ((KvmVm)vm).ReportStallAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));

        // What it concludes depends on what the guest does after its banner; what it read does not.
        Assert.Equal(KvmVm.StallSamples, report.Rounds.Count);
        Assert.Equal(2, report.Vcpus.Count);
        var boot = report.Rounds[^1].Single(s => s.Index == 0);
        Assert.NotNull(boot.Registers);
        Assert.Equal("long", boot.Registers!.Mode);
        Assert.True(boot.Exits[KvmExit.KVM_EXIT_IO] > 0, "the serial console's port I/O is not counted");
        Assert.True(boot.Exits.InKvmRun > TimeSpan.Zero);
        Assert.DoesNotContain('\n', report.Describe());
        Assert.All(vcpus, v => Assert.Equal(VcpuState.Running, v.State));
        Assert.DoesNotContain(events.Events, e => e is VmEvent.Stopped or VmEvent.Resumed);

        await vm.KillAsync(CancellationToken.None);
        await events.WaitForExitAsync();
    }

    [KvmFact]
    public async Task Guest_poweroff_ends_the_vm_with_a_guest_initiated_shutdown_then_exited()
    {
        var image = await DemoImage.GetAsync();
        await using var driver = Driver("orchestrator.poweroff=1");
        var vm = await driver.StartAsync(Specs.For(image, "kvm-off"), CancellationToken.None);
        var events = new EventRecorder(vm);

        await events.WaitForBannerAsync("kvm-off");
        var shutdown = await events.WaitForAsync<VmEvent.Shutdown>(_ => true, "a Shutdown event after poweroff");
        Assert.True(shutdown.GuestInitiated);
        await events.WaitForExitAsync();
        Assert.IsType<VmEvent.Exited>(events.Events[^1]);
    }

    [KvmFact]
    public async Task A_guest_reboot_through_the_i8042_ends_the_vm_as_a_guest_reset()
    {
        var image = await DemoImage.GetAsync();
        // The kernel runs busybox `reboot -f` as init (what follows "--" is init's argv), which restarts at once: reboot=k
        // pulses the i8042's reset line (or, failing that, the kernel triple-faults): either way a guest reset.
        await using var driver = Driver("rdinit=/bin/reboot -- -f");
        var vm = await driver.StartAsync(Specs.For(image, "kvm-reboot"), CancellationToken.None);
        var events = new EventRecorder(vm);

        var shutdown = await events.WaitForAsync<VmEvent.Shutdown>(_ => true, "a Shutdown event after reboot");
        Assert.True(shutdown.GuestInitiated);
        Assert.Equal("guest-reset", shutdown.Reason);
        await events.WaitForExitAsync();
    }

    [NoKvmFact]
    public async Task Without_kvm_a_start_fails_saying_what_is_missing()
    {
        var image = await DemoImage.GetAsync();
        await using var driver = Driver();
        var failure = await Assert.ThrowsAsync<HypervisorException>(() => driver.StartAsync(Specs.For(image, "no-kvm"), CancellationToken.None));
        Assert.Contains("/dev/kvm", failure.Message);
        Assert.Empty(Directory.Exists(Path.Combine(_dir.Path, "vms")) ? Directory.GetDirectories(Path.Combine(_dir.Path, "vms")) : []);
    }

    [Fact]
    public async Task Out_of_range_vcpus_or_memory_are_refused_before_touching_kvm()
    {
        var image = await DemoImage.GetAsync();
        await using var driver = Driver();
        var spec = Specs.For(image, "bad");
        await Assert.ThrowsAsync<HypervisorException>(() => driver.StartAsync(spec with { Vcpus = 0 }, CancellationToken.None));
        await Assert.ThrowsAsync<HypervisorException>(() => driver.StartAsync(spec with { Vcpus = KvmDriver.MaxVcpus + 1 }, CancellationToken.None));
        await Assert.ThrowsAsync<HypervisorException>(() => driver.StartAsync(spec with { MemoryMiB = 16 }, CancellationToken.None));
        await Assert.ThrowsAsync<HypervisorException>(() => driver.StartAsync(spec with { MemoryMiB = 4096 }, CancellationToken.None));
        await Assert.ThrowsAsync<HypervisorException>(() =>
            driver.StartAsync(spec with { Image = image with { KernelPath = "/nonexistent" } }, CancellationToken.None));
    }

    [Fact]
    public async Task Kernel_command_line_has_the_console_and_reset_path_and_never_the_vm_name()
    {
        var image = await DemoImage.GetAsync();
        var options = new KvmDriverOptions { RunDirectory = _dir.Path, ExtraKernelAppend = " orchestrator.poweroff=1 " };
        var line = KvmDriver.CommandLine(Specs.For(image, "tenant-name", burn: true), options);
        Assert.StartsWith("console=ttyS0 quiet panic=-1 reboot=k", line);
        Assert.EndsWith("orchestrator.burn=1 orchestrator.poweroff=1", line);
        Assert.DoesNotContain("tenant-name", line);

        await using var driver = Driver();
        Assert.Empty(await driver.DiscoverAsync(CancellationToken.None)); // in-process VMs never outlive the node
        Assert.Equal("kvm", driver.Name);
    }

    private KvmDriver Driver(string? extraAppend = null) =>
        new(new KvmDriverOptions { RunDirectory = _dir.Path, ExtraKernelAppend = extraAppend });
}

/// <summary>Two cores here: guests boot one test at a time.</summary>
[CollectionDefinition(Name)]
public sealed class KvmCollection
{
    public const string Name = "kvm";
}
