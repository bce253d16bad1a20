using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class VmBootstrapTests
{
    // Made with ssh-keygen -t ed25519; ssh-keygen -lf printed the fingerprint below.
    private const string Ed25519Key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiqCh9NnzBUj+DmyWnvEl25VXV4S1lDzwAFpRgytTny me@host";
    private const string Ed25519Fingerprint = "SHA256:jkIpt94HJjBr5WOb66OAxNRWSCpYoGuyVu0SU5R0iMQ";

    private static readonly IReadOnlySet<string> Images = new HashSet<string> { "demo" };

    private static IReadOnlyList<FieldError> Validate(VmBootstrap bootstrap) =>
        VmSpecValidator.Validate(new VmSpec("web1", 1, 256, "demo", Bootstrap: bootstrap), VmSpecLimits.Default, Images);

    [Theory]
    [InlineData("web1")]
    [InlineData("web-1.example.com")]
    [InlineData("A1")]
    [InlineData("x")]
    public void A_hostname_of_rfc_1123_labels_is_valid(string hostname) =>
        Assert.Empty(Validate(new VmBootstrap(hostname)));

    [Theory]
    [InlineData("")]
    [InlineData("-web")]
    [InlineData("web-")]
    [InlineData("web..example")]
    [InlineData("web_1")]
    [InlineData("web\n")]
    [InlineData("$(touch /tmp/x)")]
    [InlineData("a.b.")]
    public void A_hostname_that_is_no_hostname_is_named(string hostname)
    {
        var error = Assert.Single(Validate(new VmBootstrap(hostname)));
        Assert.Equal("hostname", error.Field);
        Assert.DoesNotContain("\n", error.Message);
    }

    [Fact]
    public void A_hostname_label_over_63_or_a_name_over_253_characters_is_refused()
    {
        Assert.Equal("hostname", Assert.Single(Validate(new VmBootstrap(new string('a', 64)))).Field);
        var long254 = string.Join('.', Enumerable.Repeat(new string('a', 50), 5));
        Assert.Equal(254, long254.Length);
        Assert.Equal("hostname", Assert.Single(Validate(new VmBootstrap(long254))).Field);
    }

    [Fact]
    public void A_vm_without_a_hostname_gets_its_name() =>
        Assert.Equal("web1", VmBootstrap.HostnameOf(new VmSpec("web1", 1, 256, "demo", Bootstrap: new VmBootstrap(SshKeys: [Ed25519Key]))));

    [Fact]
    public void An_openssh_public_key_is_valid_and_fingerprinted_as_ssh_keygen_does()
    {
        Assert.Empty(Validate(new VmBootstrap(SshKeys: [Ed25519Key])));
        Assert.Equal(Ed25519Fingerprint, VmBootstraps.Fingerprint(Ed25519Key));
    }

    [Theory]
    [InlineData("")]
    [InlineData("ssh-dss AAAAB3NzaC1kc3MAAACBAP")]
    [InlineData("ssh-ed25519")]
    [InlineData("ssh-ed25519 not-base64!")]
    [InlineData("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPiqCh9NnzBUj+DmyWnvEl25VXV4S1lDzwAFpRgytTny")] // an ed25519 blob under ssh-rsa
    [InlineData("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiqCh9NnzBUj+DmyWnvEl25VXV4S1lDzwAFpRgytTny\nssh-ed25519 AAAA")]
    [InlineData("-----BEGIN OPENSSH PRIVATE KEY-----")]
    public void A_line_that_is_no_public_key_is_named_by_its_index(string line)
    {
        var error = Assert.Single(Validate(new VmBootstrap(SshKeys: [Ed25519Key, line])));
        Assert.Equal("sshKeys[1]", error.Field);
    }

    [Fact]
    public void Too_many_or_too_long_keys_are_refused()
    {
        var many = Enumerable.Repeat(Ed25519Key, VmBootstraps.MaxSshKeys + 1).ToList();
        Assert.Equal("sshKeys", Assert.Single(Validate(new VmBootstrap(SshKeys: many))).Field);
        var longComment = Ed25519Key + " " + new string('c', VmBootstraps.MaxSshKeyChars);
        Assert.Contains("over the limit of 4096", Assert.Single(Validate(new VmBootstrap(SshKeys: [longComment]))).Message);
    }

    [Fact]
    public void User_data_up_to_64_KiB_is_valid_and_one_byte_more_is_refused_naming_the_limit()
    {
        Assert.Empty(Validate(new VmBootstrap(UserData: new byte[VmBootstraps.MaxUserDataBytes])));
        var error = Assert.Single(Validate(new VmBootstrap(UserData: new byte[VmBootstraps.MaxUserDataBytes + 1])));
        Assert.Equal("userData", error.Field);
        Assert.Equal("is 65537 bytes, over the limit of 65536 bytes (64 KiB)", error.Message);
    }

    [Fact]
    public void Bootstraps_are_equal_by_content_so_an_unchanged_spec_is_the_same_spec()
    {
        var a = new VmSpec("web1", 1, 256, "demo", Bootstrap: new VmBootstrap("h", [Ed25519Key], [0, 1, 2]));
        var b = new VmSpec("web1", 1, 256, "demo", Bootstrap: new VmBootstrap("h", [Ed25519Key], [0, 1, 2]));
        Assert.True(a.SameAs(b));
        Assert.False(a.SameAs(b with { Bootstrap = new VmBootstrap("h", [Ed25519Key], [0, 1, 3]) }));
        Assert.False(a.SameAs(b with { Bootstrap = null }));
    }

    [Fact]
    public void Nothing_given_is_no_bootstrap_at_all()
    {
        Assert.Null(VmBootstrap.Of(null, [], []));
        Assert.Equal("h", VmBootstrap.Of("h", null, null)!.Hostname);
    }

    [Fact]
    public void User_data_is_shown_by_its_sha256() =>
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", new VmBootstrap(UserData: "abc"u8.ToArray()).UserDataSha256());
}
