using System.Text.Json;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>VmSpec keeps its rarely set fields in a record of their own: from outside it must stay a plain record.</summary>
public class VmSpecRecordTests
{
    private static readonly VmSpec Plain = new("web", 2, 512, "demo");

    [Fact]
    public void A_field_set_and_cleared_again_leaves_a_spec_equal_to_one_that_never_had_it()
    {
        var cleared = Plain with { Group = "g", DiskGiB = 4 } with { Group = null, DiskGiB = null };

        Assert.Equal(Plain, cleared);
        Assert.Equal(Plain.GetHashCode(), cleared.GetHashCode());
        Assert.NotEqual(Plain, Plain with { Group = "g" });
        Assert.Equal(Plain, Plain with { RestartPolicy = RestartPolicy.Never } with { RestartPolicy = RestartPolicy.OnFailure });
        Assert.NotEqual(Plain, Plain with { RestartPolicy = RestartPolicy.Always });
        Assert.Equal(RestartPolicy.Always, (Plain with { RestartPolicy = RestartPolicy.Always, Group = "g" } with { Group = null }).RestartPolicy);
    }

    [Fact]
    public void With_changes_the_copy_only()
    {
        var grouped = Plain with { Group = "g", Driver = "qemu" };
        var moved = grouped with { Group = "h" };

        Assert.Equal(("g", "qemu"), (grouped.Group, grouped.Driver));
        Assert.Equal(("h", "qemu"), (moved.Group, moved.Driver));
        Assert.Null(Plain.Group);
    }

    [Fact]
    public void Every_field_survives_json_as_before()
    {
        var full = new VmSpec("web", 2, 512, "demo", RestartPolicy.Always, VmResources.Default with { CpuShares = 2048 },
            new Dictionary<string, string> { ["env"] = "prod" }, "qemu", "kvm", new VmBootstrap("web.example", ["ssh-ed25519 AAAA"], [1, 2]),
            8, ["zone=a"], "g", [new Networks.VmNic("net", "10.0.0.2", "02:00:00:00:00:02")], ["vol"], "vm/snap");

        var json = JsonSerializer.Serialize(full);
        var read = JsonSerializer.Deserialize<VmSpec>(json)!;

        Assert.Equal(JsonSerializer.Serialize(read), json);
        Assert.Contains("\"Group\":\"g\"", json);
        Assert.DoesNotContain("_rare", json, StringComparison.OrdinalIgnoreCase);
        Assert.True(full.SameAs(read));
        Assert.Equal(Plain, JsonSerializer.Deserialize<VmSpec>(JsonSerializer.Serialize(Plain)));
    }
}
