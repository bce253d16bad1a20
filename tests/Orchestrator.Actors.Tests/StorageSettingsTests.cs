using Akka.Configuration;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain.Storage;

namespace Orchestrator.Actors.Tests;

/// <summary>rbd pools in <c>orchestrator.storage.pools</c>: what they need, and nothing that could break QEMU's arguments.</summary>
public sealed class StorageSettingsTests
{
    private static StorageSettings Parse(string pools) =>
        StorageSettings.Create(ConfigurationFactory.ParseString($"pools {{ {pools} }}"), "/var/lib/orchestrator");

    [Fact]
    public void An_rbd_pool_is_shared_and_keeps_where_its_cluster_is()
    {
        var pool = Assert.Single(Parse("ceph { kind = rbd, ceph-pool = vms, ceph-user = orchestrator, capacity-gib = 2048 }").Pools);
        Assert.Equal(new StoragePoolInfo("ceph", StoragePoolKinds.Rbd, 2048, 4.0, Shared: true), pool.Info);
        Assert.Equal("/etc/ceph/ceph.conf", pool.CephConf);
        Assert.Equal("vms", pool.CephPool);
        Assert.Equal("orchestrator", pool.CephUser);
    }

    [Theory]
    [InlineData("ceph { kind = rbd, capacity-gib = 10 }", "ceph-pool must name the Ceph pool")]
    [InlineData("ceph { kind = rbd, ceph-pool = vms }", "capacity-gib must be at least 1")]
    [InlineData("ceph { kind = rbd, ceph-pool = \"vms:conf=/tmp/x\", capacity-gib = 10 }", "ceph-pool must name the Ceph pool")]
    [InlineData("ceph { kind = rbd, ceph-pool = vms, ceph-conf = \"/etc/ceph/a,b.conf\", capacity-gib = 10 }", "ceph-conf must be an absolute path")]
    [InlineData("ceph { kind = rbd, ceph-pool = vms, ceph-conf = \"ceph.conf\", capacity-gib = 10 }", "ceph-conf must be an absolute path")]
    [InlineData("ceph { kind = rbd, ceph-pool = vms, ceph-user = \"a:b\", capacity-gib = 10 }", "ceph-user must be a Ceph client name")]
    public void A_malformed_rbd_pool_is_refused_naming_the_pool_and_the_setting(string pools, string expected)
    {
        var refused = Assert.Throws<ConfigurationException>(() => Parse(pools));
        Assert.Contains("orchestrator.storage.pools.ceph", refused.Message);
        Assert.Contains(expected, refused.Message);
    }
}
