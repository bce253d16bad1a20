using System.Text.Json;
using Orchestrator.Contracts;

namespace Orchestrator.Cli.Tests;

/// <summary>The API writes and the CLI reads the same records (Orchestrator.Contracts): their names on the wire are pinned here.</summary>
public class WireContractsTests
{
    private static readonly VmDto Vm = new("0f8fad5b", "web1", "acme", 2, 512, "demo", "on-failure", "Running", "Ready", null, "host-a", 3, 4242, 1,
        new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero), null, [new VcpuDto(0, 4250, 1.5)], null,
        new VmResourcesDto(2048, 500, null, 0, null, null, 750, null, null), new Dictionary<string, string> { ["env"] = "dev" }, false, null, null,
        new VmBootstrapDto("web1", ["SHA256:abc"], 12, "00ff"));

    [Fact]
    public void A_vm_is_written_with_the_camel_case_names_the_cli_reads_nulls_included()
    {
        using var json = JsonDocument.Parse(JsonSerializer.Serialize(Vm, WireJson.Options));

        Assert.Equal(
            ["id", "name", "tenant", "vcpus", "memoryMiB", "image", "restartPolicy", "desiredState", "state", "reason", "host", "epoch", "pid",
             "restarts", "createdAt", "readyAt", "vcpuThreads", "consoleTail", "resources", "labels", "paused", "driver", "accelerator",
             "bootstrap", "guest", "disk", "hostSelector", "group", "nics"],
            json.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("reason").ValueKind);
        Assert.Equal(4250, json.RootElement.GetProperty("vcpuThreads")[0].GetProperty("threadId").GetInt32());
    }

    [Fact]
    public void A_vm_read_back_has_what_was_written()
    {
        var read = JsonSerializer.Deserialize<VmDto>(JsonSerializer.Serialize(Vm, WireJson.Options), WireJson.Options)!;

        Assert.Equal(Vm.Resources, read.Resources);
        Assert.Equal(Vm.VcpuThreads, read.VcpuThreads);
        Assert.Equal(Vm.Bootstrap!.SshKeyFingerprints, read.Bootstrap!.SshKeyFingerprints);
        Assert.Equal(Vm with { VcpuThreads = read.VcpuThreads, Labels = read.Labels, Bootstrap = read.Bootstrap }, read);
        Assert.Equal(Vm.Bootstrap with { SshKeyFingerprints = read.Bootstrap.SshKeyFingerprints }, read.Bootstrap);
        Assert.Equal("dev", read.Labels["env"]);
    }

    [Fact]
    public void A_create_request_leaves_out_the_optional_fields_it_does_not_set()
    {
        var json = JsonSerializer.Serialize(new CreateVmRequest("web1", 1, 256, "demo", null, CpuShares: 512), WireJson.Options);

        Assert.Equal("""{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","cpuShares":512}""", json);
    }
}
