using Orchestrator.Actors.Hosts;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Tests;

public sealed class CgroupScopeTests
{
    [Fact]
    public void A_host_id_with_a_trailing_newline_is_not_used_as_a_cgroup_directory_name()
    {
        Assert.Equal("h1", HostCgroups.Scope(new HostId("h1")));
        Assert.StartsWith("host-", HostCgroups.Scope(new HostId("h1\n")));
    }
}
