using System.Text.Json;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>VmRecord is packed (rare fields in a record of their own, times as ticks): from outside it must stay a plain record.</summary>
public class VmRecordTests
{
    private static readonly VmRecord Plain = new(
        new VmId(Guid.Parse("0b5c1f9e-8d7a-4c3b-9e2f-1a2b3c4d5e6f")), new TenantId("acme"), new VmSpec("web", 2, 512, "demo"),
        DesiredState.Running, VmStatus.Pending, null, null, new Epoch(1), null, 0,
        new DateTimeOffset(2026, 12, 6, 9, 0, 0, TimeSpan.Zero), null);

    [Fact]
    public void A_field_set_and_cleared_again_leaves_a_record_equal_to_one_that_never_had_it()
    {
        var cleared = Plain with { Reason = "crashed", Pid = 42, ReadyAt = Plain.CreatedAt, Disk = new VmDisk("local", null), EntitledCpuMillicores = 500 }
            with { Reason = null, Pid = null, ReadyAt = null, Disk = null, EntitledCpuMillicores = null };

        Assert.Equal(Plain, cleared);
        Assert.Equal(Plain.GetHashCode(), cleared.GetHashCode());
        Assert.NotEqual(Plain, Plain with { Pid = 42 });
        Assert.NotEqual(Plain, Plain with { EntitledCpuMillicores = 0 });
        Assert.NotEqual(Plain, Plain with { Host = new HostId("h1") });
        Assert.Equal(Plain, Plain with { Restarts = 3, EntitledCpuMillicores = 1L << 40 } with { Restarts = 0, EntitledCpuMillicores = null });
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(int.MaxValue + 1L)]
    [InlineData(int.MinValue + 1L)]
    [InlineData(int.MinValue)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MinValue)]
    public void Every_entitlement_reads_back_as_it_was_set(long millicores)
    {
        var set = Plain with { EntitledCpuMillicores = millicores };

        Assert.Equal(millicores, set.EntitledCpuMillicores);
        Assert.Equal(millicores, (set with { Reason = "x" } with { Reason = null }).EntitledCpuMillicores);
        Assert.Equal(set, JsonSerializer.Deserialize<VmRecord>(JsonSerializer.Serialize(set)));
        Assert.Null((set with { EntitledCpuMillicores = null }).EntitledCpuMillicores);
        Assert.Equal(Plain, set with { EntitledCpuMillicores = null });
    }

    [Fact]
    public void With_changes_the_copy_only()
    {
        var placed = Plain with { Host = new HostId("h1"), Status = VmStatus.Starting, Pid = 7, EntitledCpuMillicores = 2000 };
        var ready = placed with { Status = VmStatus.Ready, ReadyAt = Plain.CreatedAt.AddSeconds(3) };

        Assert.Equal((new HostId("h1"), VmStatus.Starting, 7, 2000L, null), (placed.Host, placed.Status, placed.Pid, placed.EntitledCpuMillicores, placed.ReadyAt));
        Assert.Equal((new HostId("h1"), VmStatus.Ready, 7, 2000L), (ready.Host, ready.Status, ready.Pid, ready.EntitledCpuMillicores));
        Assert.Equal(Plain.CreatedAt.AddSeconds(3), ready.ReadyAt);
        Assert.Equal((null, VmStatus.Pending, null, null), (Plain.Host, Plain.Status, Plain.Pid, Plain.EntitledCpuMillicores));
        Assert.False(Plain.HoldsAllocation);
        Assert.True(placed.HoldsAllocation);
    }

    [Fact]
    public void Every_field_survives_json_as_before()
    {
        var full = new VmRecord(Plain.Id, new TenantId("acme"), new VmSpec("web", 2, 512, "demo") { Group = "g" }, DesiredState.Stopped,
            VmStatus.Failed, "guest panicked", new HostId("h1"), new Epoch(9), 4242, 3,
            new DateTimeOffset(2026, 12, 6, 10, 30, 15, 123, TimeSpan.FromMinutes(90)), new DateTimeOffset(2026, 12, 6, 10, 30, 18, TimeSpan.Zero),
            1500, new VmDisk("local", new HostId("h1"), "layer-2", "snap-1"));

        var json = JsonSerializer.Serialize(full);
        var read = JsonSerializer.Deserialize<VmRecord>(json)!;

        Assert.Equal(full, read);
        Assert.Equal(JsonSerializer.Serialize(read), json);
        Assert.Contains("\"CreatedAt\":\"2026-12-06T10:30:15.123+01:30\"", json);
        Assert.Contains("\"Reason\":\"guest panicked\"", json);
        Assert.Contains("\"EntitledCpuMillicores\":1500", json);
        Assert.DoesNotContain("_rare", json, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(TimeSpan.FromMinutes(90), read.CreatedAt.Offset);
        Assert.Equal(Plain, JsonSerializer.Deserialize<VmRecord>(JsonSerializer.Serialize(Plain)));
        Assert.Contains("\"Host\":null", JsonSerializer.Serialize(Plain));
    }
}
