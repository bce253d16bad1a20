using System.Text.Json.Nodes;
using Orchestrator.Hypervisor.Kvm;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>`bench boot` with real guests: the figures it prints are there and consistent, and it leaves nothing behind.</summary>
[Collection(NodeCollection.Name)]
public sealed class BootBenchTests(ITestOutputHelper output)
{
    private Task<OrchestratorRun> BenchAsync(params string[] args) =>
        OrchestratorCommand.RunToolAsync(output, ["bench", "boot", .. args], TimeSpan.FromMinutes(4));

    [Fact]
    public async Task Qemu_boots_print_banner_times_memory_and_rates_and_leave_no_guest_behind()
    {
        var (exit, stdout, stderr, pid) = await BenchAsync("--driver", "qemu", "--boots", "2", "--burst", "2", "--output", "json");

        Assert.True(exit == 0, $"bench boot failed:\n{stderr}");
        var result = JsonNode.Parse(stdout)!.AsObject();
        Assert.StartsWith("qemu (", (string)result["driver"]!);
        Assert.Equal(2, (int)result["boots"]!);
        Assert.Equal(2, (int)result["burst_vms"]!);
        var p50 = (double)result["start_to_banner_ms_p50"]!;
        Assert.True(p50 > 0 && p50 <= (double)result["start_to_banner_ms_p99"]!, stdout);
        // The VMM's own memory is QEMU's resident set less the guest's RAM: above zero, below the whole.
        var vmm = (double)result["vmm_memory_per_vm_mib_p50"]!;
        Assert.True(vmm > 0 && vmm < (double)result["resident_per_vm_mib_p50"]!, stdout);
        Assert.True((double)result["burst_vms_created_per_s"]! > 0, stdout);
        var runDirectory = Path.Combine(Path.GetTempPath(), $"orchestrator-bench-boot-{pid}");
        Assert.False(Directory.Exists(runDirectory), $"{runDirectory} is left behind");
        Assert.DoesNotContain(Directory.GetDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)), process =>
        {
            try
            {
                return File.ReadAllText(Path.Combine(process, "cmdline")).Contains(runDirectory, StringComparison.Ordinal);
            }
            catch (IOException)
            {
                return false; // gone while we looked
            }
        });
    }

    [Fact]
    public async Task Asking_for_kvm_without_a_usable_dev_kvm_is_refused_saying_why()
    {
        if (KvmDriver.IsAvailable(out _))
        {
            return; // this machine can run it; the harness and the qemu test cover the rest
        }

        var (exit, _, stderr, _) = await BenchAsync("--driver", "kvm", "--boots", "1");

        Assert.Equal(2, exit);
        Assert.Contains("--driver kvm:", stderr);
        Assert.Contains("/dev/kvm", stderr);
    }
}
